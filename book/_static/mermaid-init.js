// Draw every <pre class="mermaid"> of the page (tools/build_book.py writes them from the notebooks' mermaid
// fences); the diagrams keep their accTitle/accDescr as the SVG's title and description.
mermaid.initialize({ startOnLoad: true, securityLevel: "strict" });
