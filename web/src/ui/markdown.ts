// Chat replies as Markdown (code blocks, lists, tables) turned into sanitized elements: marked
// parses, DOMPurify strips anything active (scripts, event handlers, javascript: links). Neither
// needs eval or inline scripts, so both run under the page's CSP.

import DOMPurify from "dompurify";
import { marked } from "marked";

/** Replaces `target`'s content with `text` rendered as Markdown; links open in a new tab. */
export function renderMarkdown(target: HTMLElement, text: string): void {
  const html = marked.parse(text, { async: false, gfm: true, breaks: true });
  target.innerHTML = DOMPurify.sanitize(html, { FORBID_TAGS: ["style", "img"] });
  for (const link of target.querySelectorAll("a")) {
    link.target = "_blank";
    link.rel = "noopener noreferrer";
  }
}
