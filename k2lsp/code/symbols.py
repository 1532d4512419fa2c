"""Definitions in a source file: qualified names, byte and line ranges, signatures, docs.

The walker descends only into nodes that can hold definitions (module level, class bodies,
namespaces, impl blocks, Python compound statements), so it touches a small part of the tree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from k2lsp.code import langrules as lr
from k2lsp.code.parse import cached_entry, parse, parse_entry

if TYPE_CHECKING:
    from tree_sitter import Node

_SIG_CHARS = 200
_DOC_CHARS = 120
_MEMBER_KINDS = frozenset({"class", "interface", "struct", "enum", "trait", "impl"})


class Symbol(NamedTuple):
    """One definition. Byte offsets index the UTF-8 file; lines are 1-based and inclusive.

    `start_byte` includes decorators / `export` / `template<>` / attributes; `core_byte` is where
    the definition proper starts; `lead_byte` also includes leading comments.
    """

    name: str
    qualname: str
    kind: str
    start_byte: int
    end_byte: int
    core_byte: int
    lead_byte: int
    start_line: int
    end_line: int
    signature: str
    doc: str
    depth: int


class _Walker:
    def __init__(self, lang: str, data: bytes) -> None:
        self.lang = lang
        self.rules = lr.RULES[lang]
        self.data = data
        self.out: list[Symbol] = []

    def visit_children(self, node: Node, scope: list[str], scope_kind: str) -> None:
        for child in node.named_children:
            self.visit(child, scope, scope_kind, None)

    def visit(self, node: Node, scope: list[str], scope_kind: str, outer: Node | None) -> None:
        rules, typ = self.rules, node.type
        if typ in rules.wrappers:
            fld = rules.wrappers[typ]
            inner = node.child_by_field_name(fld) if fld else _last_named(node)
            if inner is not None and inner is not node:
                self.visit(inner, scope, scope_kind, outer or node)
        elif typ in rules.defs:
            self.definition(node, scope, scope_kind, outer)
        elif typ in rules.containers:
            self.visit_children(node, scope, scope_kind)

    def definition(self, node: Node, scope: list[str], scope_kind: str, outer: Node | None) -> None:
        found = _name_and_body(self.lang, node, self.rules.defs[node.type])
        if found is None:
            body = node.child_by_field_name("body")
            if body is not None and node.type in ("namespace_definition", "impl_item"):
                self.visit_children(body, scope, scope_kind)
            return
        prefix, name, kind, body = found
        if kind == "function" and scope_kind in _MEMBER_KINDS:
            kind = "method"
        qual = [*scope, *prefix, name]
        if kind != "impl":
            self.out.append(
                self.make_symbol(node, outer, ".".join(qual), name, kind, body, len(scope))
            )
        if body is None:
            return
        if kind in self.rules.scopes or kind == "impl":
            self.visit_children(body, qual, kind)
        elif self.rules.nested_in_functions and kind in ("function", "method"):
            inner = self.data[body.start_byte : body.end_byte]
            if b"def " in inner or b"class " in inner:  # only then can it hold definitions
                self.visit_children(body, qual, kind)

    def make_symbol(
        self,
        node: Node,
        outer: Node | None,
        qualname: str,
        name: str,
        kind: str,
        body: Node | None,
        depth: int,
    ) -> Symbol:
        anchor = outer or node
        start, start_row, lead, comment_doc = self.leading(anchor)
        end, end_row = node.end_byte, node.end_point[0]
        if outer is not None and outer.end_byte > end:
            end, end_row = outer.end_byte, outer.end_point[0]
        nxt = (outer or node).next_sibling
        if nxt is not None and nxt.type == ";" and not nxt.is_named and nxt.start_byte == end:
            end = nxt.end_byte  # `struct S {...};` at file level: the `;` belongs to it
        header_end = body.start_byte if body is not None else node.end_byte
        signature = _signature(self.data[node.start_byte : header_end], body is None)
        doc = _python_docstring(body) if self.lang == "python" else comment_doc
        return Symbol(
            name,
            qualname,
            kind,
            start,
            end,
            node.start_byte,
            lead,
            start_row + 1,
            end_row + 1,
            signature,
            doc,
            depth,
        )

    def leading(self, node: Node) -> tuple[int, int, int, str]:
        """(start, start row, lead start, doc), extended over attributes and leading comments."""
        rules = self.rules
        start, start_row = node.start_byte, node.start_point[0]
        lead = start
        first_comment: Node | None = None
        prev = node.prev_named_sibling
        top_row = node.start_point[0]
        while prev is not None and prev.end_point[0] >= top_row - 1:
            if prev.type in rules.decorations:
                start, start_row = prev.start_byte, prev.start_point[0]
            elif prev.type in rules.comments and _own_line(self.data, prev.start_byte):
                first_comment = prev
            else:
                break
            lead = prev.start_byte
            top_row = prev.start_point[0]
            prev = prev.prev_named_sibling
        doc = ""
        if first_comment is not None:
            doc = _comment_doc(self.data[first_comment.start_byte : first_comment.end_byte])
        return start, start_row, lead, doc


def _last_named(node: Node) -> Node | None:
    count = node.named_child_count
    return node.named_child(count - 1) if count else None


def _own_line(data: bytes, pos: int) -> bool:
    """Is only whitespace before `pos` on its line (so the comment is not a trailing one)?"""
    line_start = data.rfind(b"\n", 0, pos) + 1
    return not data[line_start:pos].strip()


def _name_and_body(
    lang: str, node: Node, kind: str
) -> tuple[list[str], str, str, Node | None] | None:
    """(qualifier parts, name, kind, body) of a definition node, or None when it is not one."""
    typ = node.type
    if typ in (
        "lexical_declaration",
        "variable_declaration",
        "field_definition",
        "public_field_definition",
    ):
        found = lr.js_value_def(node)
        if found is None:
            return None
        name, value = found
        is_class = value.type in ("class", "class_expression")
        return [], name, "class" if is_class else kind, value.child_by_field_name("body")
    if lang in ("c", "cpp") and typ in ("function_definition", "field_declaration", "declaration"):
        return _c_function(node, kind)
    if typ in ("struct_specifier", "union_specifier", "enum_specifier", "class_specifier"):
        body = node.child_by_field_name("body")
        name_node = node.child_by_field_name("name")
        if body is None or name_node is None:
            return None
        return [], lr._text(name_node), kind, body
    if typ == "type_definition":
        decl = node.child_by_field_name("declarator")
        return (
            ([], lr._text(decl), kind, None)
            if decl is not None and decl.type == "type_identifier"
            else None
        )
    if typ == "type_declaration":
        return _go_type(node)
    if typ == "method_declaration" and lang == "go":
        recv = lr.go_receiver_type(node)
        name = lr._text(node.child_by_field_name("name"))
        return ([recv] if recv else []), name, kind, node.child_by_field_name("body")
    if typ == "impl_item":
        name = lr.rust_impl_type(node)
        return ([], name, kind, node.child_by_field_name("body")) if name else None
    name_node = node.child_by_field_name("name")
    if name_node is None:
        return None
    body = node.child_by_field_name("body")
    return [], lr._text(name_node), kind, body


def _c_function(node: Node, kind: str) -> tuple[list[str], str, str, Node | None] | None:
    parent = node.parent
    if node.type != "function_definition" and (
        parent is None or parent.type != "field_declaration_list"
    ):
        return None
    found = lr.c_declarator_name(node)
    if found is None:
        return None
    parts, _decl = found
    body = node.child_by_field_name("body")
    real_kind = kind
    if node.type == "function_definition":
        real_kind = "method" if len(parts) > 1 else "function"
    return parts[:-1], parts[-1], real_kind, body


def _go_type(node: Node) -> tuple[list[str], str, str, Node | None] | None:
    specs = [c for c in node.named_children if c.type in ("type_spec", "type_alias")]
    if len(specs) != 1:
        return None
    spec = specs[0]
    typ = spec.child_by_field_name("type")
    kind = {"struct_type": "struct", "interface_type": "interface"}.get(
        typ.type if typ else "", "type"
    )
    return [], lr._text(spec.child_by_field_name("name")), kind, None


def _signature(header: bytes, whole: bool) -> str:
    text = header.decode("utf-8", "replace")
    if whole:
        text = text.split("\n", 1)[0]
    text = " ".join(text.split()).rstrip(" {:=")
    if text.endswith("=>"):
        text = text[:-2].rstrip()
    return text if len(text) <= _SIG_CHARS else text[: _SIG_CHARS - 3] + "..."


def _python_docstring(body: Node | None) -> str:
    if body is None or not body.named_child_count:
        return ""
    first = body.named_child(0)
    if first is None or first.type != "expression_statement" or not first.named_child_count:
        return ""
    string = first.named_child(0)
    if string.type != "string":
        return ""
    parts = [lr._text(c) for c in string.named_children if c.type == "string_content"]
    return _first_line("".join(parts))


def _comment_doc(raw: bytes) -> str:
    lines = []
    for line in raw.decode("utf-8", "replace").splitlines():
        stripped = line.strip().lstrip("/#*!").removesuffix("*/").strip()
        if stripped:
            lines.append(stripped)
    return _first_line("\n".join(lines))


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= _DOC_CHARS else line[: _DOC_CHARS - 3] + "..."
    return ""


def extract_symbols(lang: str, data: bytes, tree: object | None = None) -> list[Symbol]:
    """Every definition in `data` (UTF-8 source of language `lang`), in document order."""
    from tree_sitter import Tree

    parsed = tree if isinstance(tree, Tree) else parse(lang, data)
    walker = _Walker(lang, data)
    walker.visit_children(parsed.root_node, [], "")
    walker.out.sort(key=lambda s: (s.start_byte, -s.end_byte))
    return walker.out


def symbols_of(lang: str, data: bytes, *, keep: bool = True) -> list[Symbol]:
    """`extract_symbols` of `data`, reusing the cached tree and the symbols already extracted
    from it (an edit's lookup after the repo map refreshed the file, or the reverse). With
    `keep=False` nothing is parsed into the cache (the repo map's scan of a whole tree)."""
    entry = parse_entry(lang, data) if keep else cached_entry(lang, data)
    if entry is None:
        return extract_symbols(lang, data)
    tree, memo = entry
    found: tuple[Symbol, ...] | None = memo.get("symbols")
    if found is None:
        found = tuple(extract_symbols(lang, data, tree))
        memo["symbols"] = found
    return list(found)
