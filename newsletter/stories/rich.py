"""Rich story bodies: a small, safe HTML subset stored beside a faithful plain text.

Every body that reaches a page or a mail as HTML has gone through `sanitise` (nh3, the
Rust ammonia sanitiser): only the tags and attributes below survive, links only with
http, https or mailto, and every link opens as an ordinary link (no script, no event
handler, no style, no javascript: or data: URL, no CSS expression).

Whatever the input (Markdown rendered by markdown-it, a feed's HTML, a JSON "html"
field, plain text), the body becomes a list of blocks: p, h3, h4, ul, ol, blockquote,
pre, figure, hr. A block is what an excerpt counts and what it never cuts in half (a
list is one block), and what the plain text makes one paragraph of. The page's own
headline is the h1/h2, so a body's headings are mapped down to h3 and h4.

HTML is sanitised twice: once on the way in with a wider set of tags (so a feed's <div>
and <h2> still mark where paragraphs and headings are), and once on the way out with
the final subset, after the blocks are rebuilt. The tree in between is read with the
standard library's HTMLParser; it only ever sees nh3's well-formed output.

The plain text (Story.lede + Story.body) is what a text reader sees: paragraphs apart by
blank lines, a list one block of "- item" / "1. item" lines, a link as "words [1]" with
a block "[1] https://…" after the last paragraph, an image as "[Image: alt]".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser
from typing import Union
from urllib.parse import urljoin

import nh3

TAGS = frozenset(
    {
        "p", "br", "strong", "b", "em", "i", "u", "s", "sub", "sup", "a", "ul", "ol", "li",
        "blockquote", "h3", "h4", "img", "figure", "figcaption", "code", "pre", "hr",
    }
)  # fmt: skip
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}, "ol": {"start"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})

# The way in: structure that only tells where blocks start and end (unwrapped later).
HEADINGS = {"h1": "h3", "h2": "h3", "h3": "h3", "h4": "h4", "h5": "h4", "h6": "h4"}
CONTAINERS = frozenset(
    {
        "div", "section", "article", "main", "header", "footer", "aside", "nav", "address",
        "table", "thead", "tbody", "tfoot", "tr", "caption", "dl", "dt", "dd", "center",
        "details", "summary", "li", "figcaption",
    }
)  # fmt: skip
CELLS = frozenset({"td", "th"})
INPUT_TAGS = TAGS | CONTAINERS | CELLS | set(HEADINGS)
# Dropped with everything inside: code, embedded documents and whatever a page shows
# only to machines. The rest of an unknown tag's text is kept (as text).
DROPPED = frozenset(
    {
        "script", "style", "template", "noscript", "iframe", "frame", "frameset", "noframes",
        "object", "embed", "applet", "svg", "math", "head", "title", "textarea", "select",
        "button", "canvas", "audio", "video", "form", "noembed",
    }
)  # fmt: skip

BLOCKS = frozenset({"p", "h3", "h4", "ul", "ol", "blockquote", "pre", "figure", "hr"})
INLINE = frozenset({"strong", "b", "em", "i", "u", "s", "sub", "sup", "code", "a", "br", "img"})
VOID = frozenset({"br", "img", "hr", "wbr"})
LISTS = frozenset({"ul", "ol"})


def sanitise(html: str, base_url: str | None = None) -> str:
    """The allowed subset of `html`; everything else is dropped (script and style with
    their content), text is kept and escaped. A relative link or image is made absolute
    against `base_url` (the story's own address), or dropped without one: a mail has no
    page to be relative to."""
    return _clean(html, TAGS, base_url)


def _clean(html: str, tags: Iterable[str], base_url: str | None) -> str:
    return nh3.clean(
        html,
        tags=set(tags),
        clean_content_tags=set(DROPPED),
        attributes={k: set(v) for k, v in ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        url_relative=lambda url: _absolute(url, base_url),
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def _absolute(url: str, base_url: str | None) -> str | None:
    """A relative address made absolute against the story's own; none without one, and
    none for an empty address or a bare #fragment (what a stripped link leaves)."""
    if not base_url or not url.strip() or url.startswith("#"):
        return None
    return urljoin(base_url, url.strip())


# The tree ------------------------------------------------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node] = field(default_factory=list)


Node = Union[Element, str]  # noqa: UP007 - a runtime alias, read before 3.12's `type`


class _TreeBuilder(HTMLParser):
    """nh3's output as a tree; unmatched end tags are ignored, open ones closed at the end."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("root")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def _tree(clean_html: str) -> list[Node]:
    builder = _TreeBuilder()
    builder.feed(clean_html)
    builder.close()
    return builder.root.children


def _is_break(node: Node) -> bool:
    return isinstance(node, Element) and node.tag == "br"


def _blank(node: Node) -> bool:
    return isinstance(node, str) and not node.strip()


def _trim(nodes: list[Node]) -> list[Node]:
    """No whitespace or line break at either end of a block's inline content."""
    nodes = list(nodes)
    while nodes and (_blank(nodes[0]) or _is_break(nodes[0])):
        nodes.pop(0)
    while nodes and (_blank(nodes[-1]) or _is_break(nodes[-1])):
        nodes.pop()
    if nodes and isinstance(nodes[0], str):
        nodes[0] = nodes[0].lstrip()
    if nodes and isinstance(nodes[-1], str):
        nodes[-1] = nodes[-1].rstrip()
    return nodes


def _has_content(nodes: Iterable[Node]) -> bool:
    for node in nodes:
        if isinstance(node, str):
            if node.strip():
                return True
        elif node.tag == "img" or _has_content(node.children):
            return True
    return False


def _inline(nodes: Iterable[Node]) -> list[Node]:
    """Inline content: whitespace collapsed, unknown tags unwrapped, links and images
    only with an absolute http(s) (or mailto) address."""
    out: list[Node] = []
    for node in nodes:
        if isinstance(node, str):
            text = re.sub(r"\s+", " ", node)
            if text:
                out.append(text)
            continue
        tag = node.tag
        if tag == "br":
            out.append(Element("br"))
        elif tag == "img":
            image = _image(node)
            if image is not None:
                out.append(image)
        elif tag == "a":
            href = node.attrs.get("href", "")
            children = _inline(node.children)
            if _good_url(href, links=True) and _has_content(children):
                attrs = {"href": href}
                if node.attrs.get("title"):
                    attrs["title"] = node.attrs["title"]
                out.append(Element("a", attrs, children))
            else:
                out.extend(children)
        elif tag in INLINE:
            children = _inline(node.children)
            if _has_content(children):
                out.append(Element(tag, {}, children))
            else:
                out.extend(c for c in children if isinstance(c, str))
        elif tag in CELLS:
            out.extend([*_inline(node.children), " "])
        else:  # a block inside inline content: its words stay, apart from their neighbours
            out.extend([" ", *_inline(node.children), " "])
    return out


def _good_url(url: str, *, links: bool) -> bool:
    schemes = ("http://", "https://", "mailto:") if links else ("http://", "https://")
    return url.lower().startswith(schemes) and not re.search(r"[\s<>\"]", url)


def _image(node: Element) -> Element | None:
    src = node.attrs.get("src", "")
    if not _good_url(src, links=False):
        return None
    attrs = {"src": src, "alt": " ".join(node.attrs.get("alt", "").split())}
    for size in ("width", "height"):
        if node.attrs.get(size, "").isdigit():
            attrs[size] = node.attrs[size]
    return Element("img", attrs)


def _paragraphs(nodes: list[Node]) -> list[Element]:
    """Loose inline content as paragraphs; two line breaks in a row end a paragraph."""
    out: list[Element] = []
    current: list[Node] = []
    pending_break = False
    for node in _inline(nodes):
        if _is_break(node):
            if pending_break:
                out.append(Element("p", {}, current))
                current, pending_break = [], False
            else:
                pending_break = True
            continue
        if pending_break and not _blank(node):
            current.append(Element("br"))
            pending_break = False
        current.append(node)
    out.append(Element("p", {}, current))
    paragraphs = []
    for p in out:
        p.children = _trim(p.children)
        if _has_content(p.children):
            paragraphs.append(p)
    return paragraphs


def _list(node: Element, tag: str) -> Element | None:
    items: list[Node] = []
    for child in node.children:
        if _blank(child):
            continue
        content = child.children if isinstance(child, Element) and child.tag == "li" else [child]
        item = _list_item(content)
        if item.children:
            items.append(item)
    if not items:
        return None
    attrs = {}
    start = node.attrs.get("start", "")
    if tag == "ol" and start.isdigit() and start != "1":
        attrs["start"] = str(int(start))
    return Element(tag, attrs, items)


def _list_item(nodes: list[Node]) -> Element:
    """An item's words and its nested lists; paragraphs inside an item become lines."""
    children: list[Node] = []
    run: list[Node] = []

    def flush() -> None:
        for p in _paragraphs(run):
            if children:
                children.append(Element("br"))
            children.extend(p.children)
        run.clear()

    for node in nodes:
        tag = HEADINGS.get(node.tag, node.tag) if isinstance(node, Element) else ""
        if tag in LISTS:
            assert isinstance(node, Element)
            flush()
            nested = _list(node, tag)
            if nested is not None:
                children.append(nested)
        elif tag in BLOCKS or tag in CONTAINERS:
            assert isinstance(node, Element)
            flush()
            for block in _blocks(node.children if tag != "p" else [node]):
                if block.tag in LISTS:
                    children.append(block)
                else:
                    run.extend(block.children)
                    flush()
        else:
            run.append(node)
    flush()
    return Element("li", {}, children)


def _text_of(nodes: Iterable[Node]) -> str:
    return "".join(n if isinstance(n, str) else _text_of(n.children) for n in nodes)


def _find(nodes: Iterable[Node], tag: str) -> Iterator[Element]:
    for node in nodes:
        if isinstance(node, Element):
            if node.tag == tag:
                yield node
            yield from _find(node.children, tag)


def _blocks(nodes: Iterable[Node]) -> list[Element]:
    """The blocks of a body: containers unwrapped, loose words made paragraphs."""
    out: list[Element] = []
    run: list[Node] = []

    def flush() -> None:
        out.extend(_paragraphs(run))
        run.clear()

    for node in nodes:
        if isinstance(node, str):
            run.append(node)
            continue
        tag = HEADINGS.get(node.tag, node.tag)
        if tag in CONTAINERS:
            flush()
            out.extend(_blocks(node.children))
        elif tag == "p":
            flush()
            out.extend(_paragraphs(node.children))
        elif tag in ("h3", "h4"):
            flush()
            words = _trim([n for n in _inline(node.children) if not _is_break(n)])
            if _has_content(words):
                out.append(Element(tag, {}, words))
        elif tag in LISTS:
            flush()
            found = _list(node, tag)
            if found is not None:
                out.append(found)
        elif tag == "blockquote":
            flush()
            inner = _blocks(node.children)
            if inner:
                out.append(Element("blockquote", {}, list(inner)))
        elif tag == "pre":
            flush()
            code = _text_of(node.children).strip("\n")
            if code.strip():
                out.append(Element("pre", {}, [code]))
        elif tag == "figure":
            flush()
            out.extend(_figure(node))
        elif tag == "hr":
            flush()
            if out and out[-1].tag != "hr":
                out.append(Element("hr"))
        else:
            run.append(node)
    flush()
    while out and out[-1].tag == "hr":
        out.pop()
    return out


def _figure(node: Element) -> list[Element]:
    images = [i for i in (_image(img) for img in _find(node.children, "img")) if i is not None]
    captions = list(_find(node.children, "figcaption"))
    caption = _trim(_inline(captions[0].children)) if captions else []
    if not images:
        return _paragraphs(caption)
    children: list[Node] = [images[0]]
    if _has_content(caption):
        children.append(Element("figcaption", {}, caption))
    return [Element("figure", {}, children)]


# Writing it out ------------------------------------------------------------------------


def _html(nodes: Iterable[Node]) -> str:
    parts = []
    for node in nodes:
        if isinstance(node, str):
            parts.append(escape(node, quote=False))
            continue
        attrs = "".join(f' {k}="{escape(v)}"' for k, v in node.attrs.items())
        if node.tag in VOID:
            parts.append(f"<{node.tag}{attrs}>")
        else:
            parts.append(f"<{node.tag}{attrs}>{_html(node.children)}</{node.tag}>")
    return "".join(parts)


def blocks_html(blocks: Iterable[Element]) -> str:
    """The blocks as the stored subset, one block a line, sanitised on the way out."""
    return sanitise("\n".join(_html([b]) for b in blocks))


class References:
    """Links as numbered references: the same address keeps its number."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def number(self, url: str) -> int:
        if url not in self.urls:
            self.urls.append(url)
        return self.urls.index(url) + 1

    def block(self) -> str:
        return "\n".join(f"[{n}] {url}" for n, url in enumerate(self.urls, 1))


def _spoken(url: str) -> str:
    """An address as a reader would type it, to see whether a link's words are it."""
    return re.sub(r"^(https?://(www\.)?|mailto:)", "", url.lower()).rstrip("/")


def _inline_text(nodes: Iterable[Node], refs: References | None) -> str:
    parts = []
    for node in nodes:
        if isinstance(node, str):
            parts.append(node)
        elif node.tag == "br":
            parts.append("\n")
        elif node.tag == "img":
            alt = node.attrs.get("alt", "")
            parts.append(f" [Image: {alt}] " if alt else "")
        elif node.tag == "a":
            words = _inline_text(node.children, refs)
            href = node.attrs.get("href", "")
            if refs is None or _spoken(words.strip()) == _spoken(href):
                parts.append(words)
            else:
                parts.append(f"{words} [{refs.number(href)}]")
        else:
            parts.append(_inline_text(node.children, refs))
    return "".join(parts)


def _lines(text: str) -> str:
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _list_text(block: Element, refs: References | None, indent: str = "") -> str:
    start = int(block.attrs.get("start", "1"))
    lines = []
    for n, item in enumerate(c for c in block.children if isinstance(c, Element)):
        marker = f"{start + n}. " if block.tag == "ol" else "- "
        words = [c for c in item.children if not (isinstance(c, Element) and c.tag in LISTS)]
        text = " ".join(_inline_text(words, refs).split())
        lines.append(f"{indent}{marker}{text}".rstrip())
        for nested in item.children:
            if isinstance(nested, Element) and nested.tag in LISTS:
                lines.append(_list_text(nested, refs, indent + " " * len(marker)))
    return "\n".join(lines)


def block_text(block: Element, refs: References | None = None) -> str:
    """One block as plain text (no blank line inside, so it stays one paragraph); with
    `refs`, links are numbered, without them a link is its words."""
    if block.tag in LISTS:
        return _list_text(block, refs)
    if block.tag == "blockquote":
        lines: list[str] = []
        for inner in block.children:
            text = block_text(inner, refs) if isinstance(inner, Element) else ""
            if text:
                lines.extend([">"] if lines else [])
                lines.extend(f"> {line}" for line in text.split("\n"))
        return "\n".join(lines)
    if block.tag == "pre":
        return re.sub(r"\n\s*\n", "\n", _text_of(block.children))
    if block.tag == "hr":
        return ""
    if block.tag == "figure":
        caption = [c for c in block.children if isinstance(c, Element) and c.tag == "figcaption"]
        if caption:
            return _lines(_inline_text(caption[0].children, refs))
        return _lines(_inline_text(block.children, refs))
    return _lines(_inline_text(block.children, refs))


def blocks_text(blocks: Iterable[Element], *, references: bool = True) -> list[str]:
    """The blocks as plain-text paragraphs, with the references block last when a link
    was numbered."""
    refs = References() if references else None
    paragraphs = [t for t in (block_text(b, refs) for b in blocks) if t]
    if refs is not None and refs.urls:
        paragraphs.append(refs.block())
    return paragraphs


# Reading it in -------------------------------------------------------------------------


@dataclass
class RichBody:
    """A story's body as blocks, written out as sanitised HTML and as plain text."""

    blocks: list[Element]

    @property
    def html(self) -> str:
        return blocks_html(self.blocks) if self.blocks else ""

    @property
    def paragraphs(self) -> list[str]:
        return blocks_text(self.blocks)

    def with_lede(self, lede: str | None) -> RichBody:
        """A separate lede (a summary field) as the first paragraph, written as text."""
        if not lede or not lede.strip():
            return self
        return RichBody([Element("p", {}, [" ".join(lede.split())]), *self.blocks])

    def take_lead_image(self, lead: str | None = None) -> Element | None:
        """A body that opens with an image on its own gives it up as the lead image; with
        a lead image named elsewhere, only that same image is taken (so it is not shown
        twice, as feeds that repeat their media:content at the top of the text would)."""
        if not self.blocks:
            return None
        first = self.blocks[0]
        images = list(_find([first], "img"))
        words = _text_of(first.children) if first.tag == "p" else ""
        if first.tag in ("p", "figure") and len(images) == 1 and not words.strip():
            if lead is None or images[0].attrs["src"] == lead:
                self.blocks.pop(0)
                return images[0]
        return None


def from_html(html: str, base_url: str | None = None) -> RichBody:
    """Untrusted HTML (a feed's content, a JSON "html" field, rendered Markdown)."""
    return RichBody(_blocks(_tree(_clean(html, INPUT_TAGS, base_url))))


def parse_blocks(body_html: str) -> list[Element]:
    """A stored body_html as its blocks again (for an excerpt)."""
    return from_html(body_html).blocks


LIST_ITEM = re.compile(r"^(?:[-*•]|(\d{1,9})[.)])[ \t]+(\S.*)$")


def _list_from_lines(lines: list[str]) -> Element | None:
    """Lines that are a list: the first an item, the rest items of the same kind or the
    hard-wrapped rest of the item before."""
    first = LIST_ITEM.match(lines[0])
    if first is None:
        return None
    ordered = first.group(1) is not None
    items: list[list[str]] = []
    for line in lines:
        found = LIST_ITEM.match(line)
        if found is not None and (found.group(1) is not None) == ordered:
            items.append([found.group(2)])
        else:
            items[-1].append(line)
    if len(items) < 2 and (ordered or len(lines) > 1):
        return None  # "1984. It was…" or a dash opening a wrapped sentence: prose
    attrs = {"start": str(int(first.group(1)))} if ordered and first.group(1) != "1" else {}
    tag = "ol" if ordered else "ul"
    return Element(tag, attrs, [Element("li", {}, [" ".join(i)]) for i in items])


def _text_blocks(paragraph: str) -> list[Element]:
    """A list written as lines ("- item", "* item", "1. item") is kept as a list, also
    after a line that leads into it ("Bring:")."""
    lines = [line.strip() for line in paragraph.split("\n") if line.strip()]
    if not lines:
        return []
    whole = _list_from_lines(lines)
    if whole is not None:
        return [whole]
    for at in range(1, len(lines) - 1):
        tail = lines[at:]
        if all(LIST_ITEM.match(line) for line in tail):
            found = _list_from_lines(tail)
            if found is not None and len(found.children) == len(tail):
                return [Element("p", {}, [" ".join(" ".join(lines[:at]).split())]), found]
    return [Element("p", {}, [" ".join(" ".join(lines).split())])]


def from_text(paragraphs: Iterable[str]) -> RichBody:
    """Plain text: every paragraph one block, escaped when written as HTML (a "<b>" a
    writer typed is shown as typed)."""
    return RichBody([block for p in paragraphs for block in _text_blocks(p)])


def from_paragraphs(paragraphs: Iterable[str]) -> RichBody:
    """Paragraphs stored before bodies were rich, each one a <p> as it always was."""
    return RichBody([Element("p", {}, [p]) for p in paragraphs if p.strip()])


# Cutting a block short -------------------------------------------------------------------


def flat_text(block: Element) -> str:
    """The block's characters as `truncate` counts them (a line break is one)."""
    return "".join(
        n if isinstance(n, str) else "\n" if n.tag == "br" else flat_text(n) for n in block.children
    )


def truncate(block: Element, length: int) -> Element:
    """The block's first `length` characters of flat_text, its markup kept around them."""

    def cut(nodes: list[Node], budget: int) -> tuple[list[Node], int]:
        out: list[Node] = []
        for node in nodes:
            if budget <= 0:
                break
            if isinstance(node, str):
                out.append(node[:budget])
                budget -= len(node[:budget])
            elif node.tag == "br":
                out.append(node)
                budget -= 1
            elif node.tag in VOID:
                out.append(node)
            else:
                children, budget = cut(node.children, budget)
                if _has_content(children):
                    out.append(Element(node.tag, dict(node.attrs), children))
        return out, budget

    children, _ = cut(block.children, length)
    return Element(block.tag, dict(block.attrs), _trim(children))


SENTENCE_END = re.compile(r"[.!?…][\"'”’»)\]]*(?=\s+(\S))")
OPENERS = "\"'“‘«([¿¡"


def sentence_end(text: str, limit: int) -> int | None:
    """Where the last whole sentence within `limit` characters ends, or None. A sentence
    ends at . ! ? or … (closing quotes and brackets included) before a capital, a digit or
    an opening quote, so "e.g. this" and "3.5 m" go on."""
    best = None
    for match in SENTENCE_END.finditer(text):
        if match.end() > limit:
            break
        following = match.group(1)
        if following.isupper() or following.isdigit() or following in OPENERS:
            best = match.end()
    return best
