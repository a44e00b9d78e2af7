"""The import policy's checks: licenses against SPDX, pickle verdicts, size, floating revisions."""

from __future__ import annotations

from typing import Any

import pytest

from registry import policy
from registry.policy import ImportRules, PolicyViolation


def test_it_turns_hub_license_keys_into_spdx_ids():
    assert policy.canonical_license("apache-2.0") == "Apache-2.0"
    assert policy.canonical_license("mit") == "MIT"
    assert policy.canonical_license("cc-by-nc-4.0") == "CC-BY-NC-4.0"
    for not_spdx in ("other", "llama2", "", "MIT OR Apache-2.0", "<script>"):
        assert policy.canonical_license(not_spdx) is None


def test_it_names_every_value_that_is_not_an_spdx_id():
    assert policy.canonical_license_ids(["mit", "MIT", "bsd-3-clause"]) == ["MIT", "BSD-3-Clause"]
    with pytest.raises(ValueError, match="'llama2', 'nope'"):
        policy.canonical_license_ids(["MIT", "llama2", "nope"])


def test_it_reads_a_card_license_given_as_a_string_or_a_list():
    assert policy.card_licenses({"license": "mit"}) == ["mit"]
    assert policy.card_licenses({"license": ["mit", "apache-2.0"]}) == ["mit", "apache-2.0"]
    assert policy.card_licenses({}, fallback="mit") == ["mit"]
    assert policy.card_licenses({}) == []


def check(rules: ImportRules, **overrides):
    values: dict[str, Any] = {
        "repo_id": "acme/m@0123456789ab",
        "revision": "main",
        "licenses": ["mit"],
        "file_sizes": {"model.safetensors": 10},
        "pickle_paths": [],
    }
    values.update(overrides)
    return policy.check_before_download(rules=rules, **values)


def test_a_license_outside_the_allow_list_is_blocked_with_the_list_named():
    rules = ImportRules(allowed_licenses=("MIT", "Apache-2.0"))
    assert check(rules, licenses=["apache-2.0"]) == []
    with pytest.raises(PolicyViolation) as error:
        check(rules, licenses=["cc-by-nc-4.0"])
    assert error.value.rule == "license"
    assert error.value.code == "policy:license"
    assert str(error.value) == (
        "Blocked by policy: license — the card's license CC-BY-NC-4.0 is not on the "
        "allow-list (Apache-2.0, MIT)"
    )


def test_an_empty_allow_list_allows_any_spdx_license():
    assert check(ImportRules(), licenses=["gpl-3.0"]) == []


@pytest.mark.parametrize("licenses", [[], ["other"]])
def test_an_unknown_or_missing_license_follows_its_setting(licenses):
    with pytest.raises(PolicyViolation, match="unknown_license"):
        check(ImportRules(unknown_license="block"), licenses=licenses)
    warned = check(ImportRules(unknown_license="warn"), licenses=licenses)
    assert [(item.rule, item.outcome) for item in warned] == [("unknown_license", "warned")]
    assert check(ImportRules(unknown_license="allow"), licenses=licenses) == []


def test_an_override_turns_the_block_into_a_recorded_finding():
    rules = ImportRules(allowed_licenses=("MIT",), overridden=frozenset({"license"}))
    findings = check(rules, licenses=["cc-by-nc-4.0"])
    assert [(item.rule, item.outcome) for item in findings] == [("license", "overridden")]
    assert "CC-BY-NC-4.0" in findings[0].reason


def test_safetensors_only_refuses_pickle_file_names_before_download():
    rules = ImportRules(pickle_policy="safetensors_only")
    assert check(rules) == []
    with pytest.raises(PolicyViolation, match="safetensors_only — pickle-based files"):
        check(rules, pickle_paths=["pytorch_model.bin"])
    assert check(ImportRules(), pickle_paths=["pytorch_model.bin"]) == []


def test_the_size_limit_gives_the_numbers():
    with pytest.raises(PolicyViolation) as error:
        check(ImportRules(max_import_bytes=100), file_sizes={"a": 60, "b": 41})
    assert error.value.rule == "max_size"
    assert "101 bytes, above the limit of 100" in str(error.value)


def test_a_floating_revision_is_refused_when_a_commit_is_required():
    rules = ImportRules(require_commit=True)
    with pytest.raises(PolicyViolation, match="require_commit"):
        check(rules, revision="main")
    assert check(rules, revision="0" * 40) == []


def verdict(path: str, kind: str, *names: str) -> dict:
    return {"path": path, "verdict": kind, "globals": list(names), "detail": f"{kind} stuff"}


def test_block_dangerous_names_the_file_and_the_import_and_warns_on_suspicious():
    rules = ImportRules()
    with pytest.raises(PolicyViolation) as error:
        policy.check_pickle_verdicts(
            [verdict("ok.bin", "safe"), verdict("evil.bin", "dangerous", "posix.system")], rules
        )
    assert error.value.rule == "dangerous_pickle"
    assert "evil.bin imports posix.system" in str(error.value)
    findings = policy.check_pickle_verdicts([verdict("odd.bin", "suspicious")], rules)
    assert [(item.rule, item.outcome) for item in findings] == [("dangerous_pickle", "warned")]


def test_warn_only_lets_a_dangerous_pickle_through_with_a_warning():
    findings = policy.check_pickle_verdicts(
        [verdict("evil.bin", "dangerous", "posix.system")], ImportRules(pickle_policy="warn_only")
    )
    assert [item.outcome for item in findings] == ["warned"]


def test_safetensors_only_refuses_any_pickle_content_even_a_safe_one():
    with pytest.raises(PolicyViolation, match="safetensors_only — pickle content found"):
        policy.check_pickle_verdicts(
            [verdict("x.safetensors", "safe")], ImportRules(pickle_policy="safetensors_only")
        )


def test_overriding_safetensors_only_leaves_the_dangerous_pickle_rule_in_force():
    rules = ImportRules(
        pickle_policy="safetensors_only", overridden=frozenset({"safetensors_only"})
    )
    safe = {"path": "w.bin", "verdict": "safe", "globals": []}
    findings = policy.check_pickle_verdicts([safe], rules)
    assert [(item.rule, item.outcome) for item in findings] == [("safetensors_only", "overridden")]
    dangerous = {"path": "x.bin", "verdict": "dangerous", "globals": ["posix.system (os.system)"]}
    with pytest.raises(PolicyViolation) as error:
        policy.check_pickle_verdicts([safe, dangerous], rules)
    assert error.value.rule == "dangerous_pickle"
    assert "posix.system" in str(error.value)


def test_the_rules_digest_changes_with_any_rule_or_override():
    base = ImportRules()
    assert base.digest() == ImportRules().digest()
    assert base.digest() != ImportRules(pickle_policy="warn_only").digest()
    assert base.digest() != ImportRules(overridden=frozenset({"dangerous_pickle"})).digest()
