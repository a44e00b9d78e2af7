"""The Hub model page says beforehand what the scan will read, with the scanners' own choice of
files (one list for the page and the scan)."""

from __future__ import annotations

import json

import pytest

from devservers.hub_double import safetensors_bytes
from imports.scanners import FILE_SCANNERS
from imports.views import format_warnings

pytestmark = pytest.mark.django_db

FILES = {
    "model.onnx": b"\x08\x07",
    "keras/model.h5": b"\x89HDF\r\n\x1a\n",
    "model-q4.gguf": b"GGUF",
    "pytorch_model.bin": b"\x80\x02}.",
    "modeling_x.py": "class X:\n    pass\n",
    "tokenizer_config.json": json.dumps({"chat_template": "{{ messages }}"}),
    "model.safetensors": safetensors_bytes(1),
}


def test_each_format_scanner_speaks_for_the_files_it_reads():
    notes = format_warnings(list(FILES))
    assert [note.split(" file(s)")[0] for note in notes] == ["1 GGUF", "1 Keras", "1 ONNX"]
    assert "(keras/model.h5)" in notes[1] and "keras_code" in notes[1]
    assert "(model.onnx)" in notes[2] and "onnx_external_data" in notes[2]
    # the scanners read what the page names, and only by name
    read = {path for path in FILES for scanner in FILE_SCANNERS if scanner.applies_to(path)}
    assert read == {"model.onnx", "keras/model.h5", "model-q4.gguf", "tokenizer_config.json"}
    assert format_warnings(["model.safetensors", "config.json"]) == []


def test_the_hub_model_page_lists_them(aegis, fresh_hub_double, bob_client):
    fresh_hub_double.add_repo("acme/many-formats", FILES, card_data={"license": "mit"})
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    html = bob_client.get("/hub/acme/many-formats/").content.decode()
    assert "1 ONNX file(s) (model.onnx)" in html
    assert "1 Keras file(s) (keras/model.h5)" in html
    assert "1 GGUF file(s) (model-q4.gguf)" in html
    assert "pickle-based format (pytorch_model.bin)" in html
    assert "modeling_x.py" in html
