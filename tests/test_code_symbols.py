"""Symbol extraction on realistic snippets of every supported language."""

from __future__ import annotations

import pytest

from k2lsp.code.languages import language_for, unsupported_note
from k2lsp.code.symbols import Symbol, extract_symbols

PY = '''\
"""Module doc."""
import functools


# Cache of parsed things.
@functools.lru_cache(maxsize=None)
async def load(path: str) -> bytes:
    """Load a file."""
    def helper():
        return 1
    return b""


class Parser(Base):
    """Parses tokens."""

    @property
    def name(self) -> str:
        return "p"

    class Node:
        def walk(self):
            pass

if TYPE_CHECKING:
    def typed() -> None: ...
'''

TS = """\
import { x } from "./x";

/** Adds numbers. */
export function add(a: number, b: number): number {
  return a + b;
}

export const double = (n: number): number => n * 2;

export default class Store<T> {
  private items: T[] = [];
  static create = () => new Store();
  get size(): number { return this.items.length; }
  add(item: T): void { this.items.push(item); }
}

export interface Shape { area(): number }
export type Id = string;
enum Color { Red, Green }
namespace Geo { export function dist() {} }
"""

JS = """\
// Greets.
function greet(name) { return `hi ${name}`; }
const handler = async (req, res) => { res.end(); };
class Widget extends Base {
  constructor(el) { super(); this.el = el; }
  #secret = () => 42;
  render() { return this.el; }
}
module.exports = { greet };
"""

GO = """\
package shapes

// Rect is a rectangle.
type Rect struct {
\tW, H float64
}

type Shape interface {
\tArea() float64
}

// Area computes the area.
func (r *Rect) Area() float64 {
\treturn r.W * r.H
}

func New(w, h float64) Rect { return Rect{w, h} }
"""

RUST = """\
/// A point.
#[derive(Debug, Clone)]
pub struct Point { x: f64, y: f64 }

impl Point {
    pub fn new(x: f64, y: f64) -> Self { Point { x, y } }
}

impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result { Ok(()) }
}

pub trait Shape { fn area(&self) -> f64; }

mod inner { pub fn helper() {} }

enum Kind { A, B }
"""

JAVA = """\
package demo;

/** A counter. */
public class Counter {
    private int n;

    public Counter() { this.n = 0; }

    @Override
    public String toString() { return "" + n; }

    public void add(int k) { n += k; }
    public void add(long k) { n += (int) k; }

    interface Listener { void changed(int n); }
    enum Mode { UP, DOWN }
}
"""

C = """\
#include <stdio.h>

/* A pair. */
struct pair { int a; int b; };

typedef struct { int x; } point_t;

static int *find(int *xs, int n) {
    return xs;
}

int main(void) { return 0; }
"""

CPP = """\
namespace geo {
template <typename T>
class Box : public Shape {
 public:
  Box();
  ~Box();
  T area() const { return w * h; }
  void scale(int k);
  void scale(double k);
 private:
  T w, h;
};
}

void geo::Box<int>::scale(int k) {}

int geo_main() { return 0; }
"""


def _by_qual(symbols: list[Symbol]) -> dict[str, Symbol]:
    return {s.qualname: s for s in symbols}


def test_python_qualified_names_decorators_async_nested_and_docs() -> None:
    syms = extract_symbols("python", PY.encode())
    quals = [s.qualname for s in syms]
    assert quals == [
        "load",
        "load.helper",
        "Parser",
        "Parser.name",
        "Parser.Node",
        "Parser.Node.walk",
        "typed",
    ]
    by = _by_qual(syms)
    load = by["load"]
    assert load.signature == "async def load(path: str) -> bytes"
    assert load.doc == "Load a file."
    assert load.start_line == 6 and load.end_line == 11  # decorator line through last body line
    assert PY.encode()[load.start_byte :].startswith(b"@functools.lru_cache")
    assert PY.encode()[load.core_byte :].startswith(b"async def load")
    assert PY.encode()[load.lead_byte :].startswith(b"# Cache of parsed things.")
    assert by["Parser.name"].kind == "method"
    assert by["Parser"].signature == "class Parser(Base)" and by["Parser"].doc == "Parses tokens."
    assert by["Parser.Node.walk"].depth == 2


def test_typescript_exports_arrows_classes_interfaces() -> None:
    syms = _by_qual(extract_symbols("typescript", TS.encode()))
    assert {
        "add",
        "double",
        "Store",
        "Store.create",
        "Store.size",
        "Store.add",
        "Shape",
        "Shape.area",
        "Id",
        "Color",
        "Geo",
        "Geo.dist",
    } <= set(syms)
    assert syms["add"].doc == "Adds numbers."
    assert TS.encode()[syms["add"].start_byte :].startswith(b"export function add")
    assert syms["double"].kind == "function"
    assert syms["double"].signature.startswith("const double = (n: number): number")
    assert syms["Store.add"].kind == "method"
    assert syms["Shape"].kind == "interface"


def test_tsx_and_javascript() -> None:
    tsx = (
        "export const App = () => <div>hi</div>;\nfunction Item({x}: P) { return <li>{x}</li>; }\n"
    )
    assert [s.qualname for s in extract_symbols("tsx", tsx.encode())] == ["App", "Item"]
    js = _by_qual(extract_symbols("javascript", JS.encode()))
    assert {
        "greet",
        "handler",
        "Widget",
        "Widget.constructor",
        "Widget.#secret",
        "Widget.render",
    } <= set(js)
    assert js["greet"].doc == "Greets."


def test_go_methods_qualified_by_receiver() -> None:
    syms = _by_qual(extract_symbols("go", GO.encode()))
    assert set(syms) == {"Rect", "Shape", "Rect.Area", "New"}
    assert syms["Rect"].kind == "struct" and syms["Rect"].doc == "Rect is a rectangle."
    assert syms["Shape"].kind == "interface"
    assert syms["Rect.Area"].kind == "method"
    assert syms["Rect.Area"].signature == "func (r *Rect) Area() float64"


def test_rust_impl_blocks_traits_attributes() -> None:
    syms = _by_qual(extract_symbols("rust", RUST.encode()))
    assert {
        "Point",
        "Point.new",
        "Point.fmt",
        "Shape",
        "Shape.area",
        "inner",
        "inner.helper",
        "Kind",
    } <= set(syms)
    point = syms["Point"]
    assert RUST.encode()[point.start_byte :].startswith(b"#[derive")
    assert point.doc == "A point."
    assert syms["Point.new"].kind == "method"


def test_java_classes_constructors_overloads() -> None:
    syms = extract_symbols("java", JAVA.encode())
    quals = [s.qualname for s in syms]
    assert quals.count("Counter.add") == 2
    assert {
        "Counter",
        "Counter.Counter",
        "Counter.toString",
        "Counter.Listener",
        "Counter.Listener.changed",
        "Counter.Mode",
    } <= set(quals)
    assert _by_qual(syms)["Counter"].doc == "A counter."
    sigs = [s.signature for s in syms if s.qualname == "Counter.add"]
    assert sigs == ["public void add(int k)", "public void add(long k)"]


def test_c_functions_structs_typedefs() -> None:
    syms = _by_qual(extract_symbols("c", C.encode()))
    assert set(syms) == {"pair", "point_t", "find", "main"}
    assert syms["find"].signature == "static int *find(int *xs, int n)"
    assert C.encode()[syms["pair"].start_byte : syms["pair"].end_byte].endswith(b"};")


def test_cpp_namespaces_templates_out_of_class_methods_overloads() -> None:
    syms = extract_symbols("cpp", CPP.encode())
    quals = [s.qualname for s in syms]
    assert "geo.Box" in quals and "geo.Box.area" in quals and "geo_main" in quals
    assert quals.count("geo.Box.scale") == 2
    box = _by_qual(syms)["geo.Box"]
    assert CPP.encode()[box.start_byte :].startswith(b"template <typename T>")
    assert any(q.endswith("Box.scale") and q.count(".") >= 1 for q in quals[-3:])


@pytest.mark.parametrize(
    ("path", "lang"),
    [
        ("a.py", "python"),
        ("b.pyi", "python"),
        ("c.JS", "javascript"),
        ("d.mjs", "javascript"),
        ("e.ts", "typescript"),
        ("f.tsx", "tsx"),
        ("g.go", "go"),
        ("h.rs", "rust"),
        ("I.java", "java"),
        ("j.c", "c"),
        ("k.h", "c"),
        ("l.cpp", "cpp"),
        ("m.hpp", "cpp"),
        ("n.cc", "cpp"),
    ],
)
def test_extension_mapping(path: str, lang: str) -> None:
    assert language_for(path) == lang


def test_unknown_language_gets_a_note() -> None:
    assert language_for("README.md") is None and language_for("Makefile") is None
    note = unsupported_note("README.md")
    assert "README.md" in note and "edit_file" in note


def test_broken_and_empty_files_do_not_crash() -> None:
    assert extract_symbols("python", b"") == []
    syms = extract_symbols("python", b"def ok():\n    pass\n\ndef bad(:\n")
    assert "ok" in [s.qualname for s in syms]


def test_crlf_and_tabs_keep_ranges_exact() -> None:
    src = b"class A:\r\n\tdef m(self):\r\n\t\treturn 1\r\n"
    syms = _by_qual(extract_symbols("python", src))
    m = syms["A.m"]
    assert src[m.start_byte : m.end_byte] == b"def m(self):\r\n\t\treturn 1"
    assert (m.start_line, m.end_line) == (2, 3)
