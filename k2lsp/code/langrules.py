"""Per-language rules for finding definitions in a tree-sitter syntax tree.

Each language lists: definition node types (with the kind of symbol they make), wrapper nodes
whose text belongs to the definition they wrap (decorators, `export`, `template<...>`), sibling
nodes that decorate the next definition (Rust attributes, TS member decorators), and container
nodes the walker descends into looking for more definitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tree_sitter import Node


@dataclass(frozen=True)
class LangRules:
    """What counts as a definition in one language."""

    defs: dict[str, str]  # node type -> kind
    wrappers: dict[
        str, str
    ]  # node type -> field holding the wrapped definition ("" = last named child)
    containers: frozenset[str]
    decorations: frozenset[str] = frozenset()
    comments: frozenset[str] = frozenset({"comment"})
    # Definition kinds whose body holds members qualified by the definition's name.
    scopes: frozenset[str] = frozenset(
        {"class", "interface", "struct", "enum", "trait", "namespace", "module"}
    )
    nested_in_functions: bool = False
    extra: dict[str, str] = field(default_factory=dict)


_PY_BLOCKS = frozenset(
    {
        "module",
        "block",
        "if_statement",
        "elif_clause",
        "else_clause",
        "try_statement",
        "except_clause",
        "except_group_clause",
        "finally_clause",
        "with_statement",
        "for_statement",
        "while_statement",
    }
)

_JS_DEFS = {
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "class_declaration": "class",
    "method_definition": "method",
    "lexical_declaration": "function",
    "variable_declaration": "function",
    "field_definition": "method",
}
_TS_DEFS = {
    **_JS_DEFS,
    "abstract_class_declaration": "class",
    "function_signature": "function",
    "method_signature": "method",
    "abstract_method_signature": "method",
    "public_field_definition": "method",
    "interface_declaration": "interface",
    "type_alias_declaration": "type",
    "enum_declaration": "enum",
    "internal_module": "namespace",
    "module": "namespace",
}
_JS_CONTAINERS = frozenset(
    {"program", "class_body", "statement_block", "interface_body", "object_type"}
)
_C_DEFS = {
    "function_definition": "function",
    "struct_specifier": "struct",
    "union_specifier": "struct",
    "enum_specifier": "enum",
    "type_definition": "type",
    "field_declaration": "method",
    "declaration": "method",
}

RULES: dict[str, LangRules] = {
    "python": LangRules(
        defs={"function_definition": "function", "class_definition": "class"},
        wrappers={"decorated_definition": "definition"},
        containers=_PY_BLOCKS,
        nested_in_functions=True,
    ),
    "javascript": LangRules(
        defs=_JS_DEFS,
        wrappers={"export_statement": "declaration"},
        containers=_JS_CONTAINERS,
        decorations=frozenset({"decorator"}),
    ),
    "typescript": LangRules(
        defs=_TS_DEFS,
        wrappers={
            "export_statement": "declaration",
            "ambient_declaration": "",
            "expression_statement": "",
        },
        containers=_JS_CONTAINERS,
        decorations=frozenset({"decorator"}),
    ),
    "go": LangRules(
        defs={
            "function_declaration": "function",
            "method_declaration": "method",
            "type_declaration": "type",
        },
        wrappers={},
        containers=frozenset({"source_file"}),
    ),
    "rust": LangRules(
        defs={
            "function_item": "function",
            "function_signature_item": "function",
            "struct_item": "struct",
            "enum_item": "enum",
            "union_item": "struct",
            "trait_item": "trait",
            "impl_item": "impl",
            "mod_item": "module",
            "type_item": "type",
            "macro_definition": "macro",
        },
        wrappers={},
        containers=frozenset({"source_file", "declaration_list"}),
        decorations=frozenset({"attribute_item"}),
        comments=frozenset({"line_comment", "block_comment"}),
    ),
    "java": LangRules(
        defs={
            "class_declaration": "class",
            "interface_declaration": "interface",
            "enum_declaration": "enum",
            "record_declaration": "class",
            "annotation_type_declaration": "interface",
            "method_declaration": "method",
            "constructor_declaration": "method",
            "compact_constructor_declaration": "method",
        },
        wrappers={},
        containers=frozenset(
            {"program", "class_body", "interface_body", "enum_body", "enum_body_declarations"}
        ),
        comments=frozenset({"line_comment", "block_comment"}),
    ),
    "c": LangRules(
        defs=_C_DEFS,
        wrappers={},
        containers=frozenset(
            {"translation_unit", "preproc_if", "preproc_ifdef", "preproc_else", "preproc_elif"}
        ),
    ),
    "cpp": LangRules(
        defs={**_C_DEFS, "class_specifier": "class", "namespace_definition": "namespace"},
        wrappers={"template_declaration": ""},
        containers=frozenset(
            {
                "translation_unit",
                "declaration_list",
                "field_declaration_list",
                "preproc_if",
                "preproc_ifdef",
                "preproc_else",
                "preproc_elif",
                "linkage_specification",
            }
        ),
    ),
}
RULES["tsx"] = RULES["typescript"]

_FUNC_VALUES = frozenset(
    {
        "arrow_function",
        "function_expression",
        "function",
        "generator_function",
        "class",
        "class_expression",
    }
)
_C_NAME_TYPES = frozenset(
    {
        "identifier",
        "field_identifier",
        "type_identifier",
        "destructor_name",
        "operator_name",
        "qualified_identifier",
    }
)


def _text(node: Node | None) -> str:
    if node is None or node.text is None:
        return ""
    return node.text.decode("utf-8", "replace")


def js_value_def(node: Node) -> tuple[str, Node] | None:
    """For `const f = () => ...` / class fields holding functions: (name, value node)."""
    if node.type in ("lexical_declaration", "variable_declaration"):
        decls = [c for c in node.named_children if c.type == "variable_declarator"]
        if len(decls) != 1:
            return None
        name_node, value = (
            decls[0].child_by_field_name("name"),
            decls[0].child_by_field_name("value"),
        )
    else:  # field_definition / public_field_definition
        name_node = node.child_by_field_name("name") or node.child_by_field_name("property")
        value = node.child_by_field_name("value")
    if name_node is None or value is None or value.type not in _FUNC_VALUES:
        return None
    if name_node.type not in ("identifier", "property_identifier", "private_property_identifier"):
        return None
    return _text(name_node), value


def c_declarator_name(node: Node) -> tuple[list[str], Node] | None:
    """Qualified name parts and function_declarator of a C/C++ function definition/declaration."""
    decl = node.child_by_field_name("declarator")
    while decl is not None and decl.type != "function_declarator":
        decl = decl.child_by_field_name("declarator")
    if decl is None:
        return None
    name = decl.child_by_field_name("declarator")
    if name is None or name.type not in _C_NAME_TYPES | {"template_function"}:
        return None
    if name.type == "template_function":
        name = name.child_by_field_name("name") or name
    parts = [p for p in _text(name).replace(" ", "").split("::") if p]
    return (parts, decl) if parts else None


def go_receiver_type(node: Node) -> str:
    """The receiver type name of a Go method (`func (s *S[T]) M()` -> `S`)."""
    recv = node.child_by_field_name("receiver")
    if recv is None:
        return ""
    for param in recv.named_children:
        typ = param.child_by_field_name("type")
        while typ is not None and typ.type in (
            "pointer_type",
            "generic_type",
            "parenthesized_type",
        ):
            inner = typ.child_by_field_name("type")
            typ = (
                inner
                if inner is not None
                else (typ.named_children[0] if typ.named_children else None)
            )
        if typ is not None:
            return _text(typ)
    return ""


def rust_impl_type(node: Node) -> str:
    """The type an `impl` block is for (`impl<T> Trait for Foo<T>` -> `Foo`)."""
    typ = node.child_by_field_name("type")
    while typ is not None and typ.type in (
        "generic_type",
        "reference_type",
        "scoped_type_identifier",
    ):
        inner = typ.child_by_field_name("type") or typ.child_by_field_name("name")
        if inner is None:
            break
        typ = inner
    return _text(typ)
