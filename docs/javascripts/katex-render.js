// Typesets pymdownx.arithmatex's generic output, \(...\) inline and \[...\] display, with the
// KaTeX bundled beside this file (no network). A formula KaTeX rejects stays as TeX and is
// reported on the console.
function typesetMath(root) {
  for (const el of root.querySelectorAll(".arithmatex")) {
    if (el.querySelector(".katex")) continue;
    const tex = el.textContent.trim();
    const displayMode = tex.startsWith("\\[");
    try {
      katex.render(tex.slice(2, -2), el, { displayMode, throwOnError: true });
    } catch (error) {
      console.error(`KaTeX could not typeset ${tex.slice(0, 60)}: ${error.message}`);
    }
  }
}

document$.subscribe(({ body }) => typesetMath(body));
