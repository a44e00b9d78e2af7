// A "Copy" button before every <pre data-copy>: copies the block's text to the clipboard.
document.addEventListener("DOMContentLoaded", () => {
  for (const block of document.querySelectorAll("pre[data-copy]")) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy these lines");
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(block.textContent);
        button.textContent = "Copied";
      } catch {
        window.getSelection().selectAllChildren(block);
        button.textContent = "Selected: press Ctrl+C";
      }
    });
    block.before(button);
  }
});
