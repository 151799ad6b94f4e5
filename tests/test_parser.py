"""The parser: text → Program, and one clear ParseError, at the right column, for anything else."""

from __future__ import annotations

import ast
import keyword
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcalc.api import parse
from gradcalc.engine import ops
from gradcalc.errors import ParseError
from gradcalc.lang import syntax
from gradcalc.lang.parser import MAX_DEPTH
from gradcalc.lang.syntax import Assign, Call, Name, Number, Pos, RetainGrad


def sx(expr) -> str:
    """An expression as an s-expression, built without recursion (trees may be very deep)."""
    out: list[str] = []
    stack = [expr]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, Name):
            out.append(item.id)
        elif isinstance(item, Number):
            out.append(item.text)
        else:
            assert isinstance(item, Call), item
            out.append("(" + item.op)
            stack.append(")")
            for arg in reversed(item.args):
                stack.append(arg)
                stack.append(" ")
    return "".join(out)


def show(source: str) -> list[str]:
    """Each statement as text: `y = (add x 1)` or `retain y`."""
    shown = []
    for statement in parse(source).statements:
        if isinstance(statement, Assign):
            shown.append(f"{statement.target} = {sx(statement.value)}")
        else:
            assert isinstance(statement, RetainGrad)
            shown.append(f"retain {statement.name}")
    return shown


def value_of(source: str):
    (statement,) = parse(source).statements
    return statement.value


def expr(text: str) -> str:
    return sx(value_of(f"y = {text}"))


def error(source: str) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse(source)
    return info.value


def frames() -> int:
    frame, n = sys._getframe(), 0
    while frame is not None:
        frame, n = frame.f_back, n + 1
    return n


def parse_with_little_stack(source: str):
    """Parse with only a few frames to spare: proves the parser does not recurse."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(frames() + 40)
    try:
        return parse(source)
    finally:
        sys.setrecursionlimit(limit)


# ---------------------------------------------------------------------------------------
# Operators: Python's precedence and associativity


@pytest.mark.parametrize(
    "text, expected",
    [
        ("x + y", "(add x y)"),
        ("x - y", "(sub x y)"),
        ("x * y", "(mul x y)"),
        ("x / y", "(div x y)"),
        ("x @ y", "(matmul x y)"),
        ("x ** y", "(pow x y)"),
        ("x ^ y", "(pow x y)"),
        ("-x", "(neg x)"),
        ("+x", "(pos x)"),
        ("a - b - c", "(sub (sub a b) c)"),
        ("a + b - c + d", "(add (sub (add a b) c) d)"),
        ("a / b / c", "(div (div a b) c)"),
        ("a / b * c", "(mul (div a b) c)"),
        ("a @ b @ c", "(matmul (matmul a b) c)"),
        ("a * b @ c", "(matmul (mul a b) c)"),
        ("a + b * c", "(add a (mul b c))"),
        ("a * b + c", "(add (mul a b) c)"),
        ("a - b / c", "(sub a (div b c))"),
        ("(a + b) * c", "(mul (add a b) c)"),
        ("a * (b + c)", "(mul a (add b c))"),
        ("x ** y ** z", "(pow x (pow y z))"),
        ("x ^ y ^ z", "(pow x (pow y z))"),
        ("x ** y ^ z", "(pow x (pow y z))"),
        ("(x ** y) ** z", "(pow (pow x y) z)"),
        ("-x ** 2", "(neg (pow x 2))"),
        ("-x ^ 2", "(neg (pow x 2))"),
        ("2 ** -1", "(pow 2 (neg 1))"),
        ("a ** -b ** c", "(pow a (neg (pow b c)))"),
        ("2 ** -x * 3", "(mul (pow 2 (neg x)) 3)"),
        ("-2 * 3", "(mul (neg 2) 3)"),
        ("-a + b", "(add (neg a) b)"),
        ("a * -b + c", "(add (mul a (neg b)) c)"),
        ("a - -b", "(sub a (neg b))"),
        ("a + +b", "(add a (pos b))"),
        ("- - x", "(neg (neg x))"),
        ("-+-x", "(neg (pos (neg x)))"),
        ("-(x)", "(neg x)"),
        ("((x))", "x"),
        ("x**2 * y + z / w - v", "(sub (add (mul (pow x 2) y) (div z w)) v)"),
        ("-x.exp()", "(neg (exp x))"),
        ("x.exp() ** 2", "(pow (exp x) 2)"),
        ("2 * x.sum()", "(mul 2 (sum x))"),
        ("-x ** -y ** -z", "(neg (pow x (neg (pow y (neg z)))))"),
    ],
)
def test_precedence_and_associativity(text, expected):
    assert expr(text) == expected


def test_spacing_does_not_matter():
    assert expr("a*-b**c+d") == expr("a * - b ** c + d") == "(add (mul a (neg (pow b c))) d)"


def test_operator_positions_are_the_operator_tokens():
    value = value_of("y = a + b * -c")
    assert value.pos == Pos(1, 7)  # +
    assert value.args[1].pos == Pos(1, 11)  # *
    assert value.args[1].args[1].pos == Pos(1, 13)  # unary -
    assert value.args[0].pos == Pos(1, 5)
    assert value_of("y = a ** b").pos == Pos(1, 7)
    assert value_of("y = a ^ b").pos == Pos(1, 7)


# ---------------------------------------------------------------------------------------
# Statements


def test_assignment():
    (statement,) = parse("y = x").statements
    assert statement == Assign("y", Name("x", Pos(1, 5)), Pos(1, 1))


def test_retain_grad_statement():
    program = parse("a = x * 2\na.retain_grad()\nb = a + 1")
    assert show("a = x * 2\na.retain_grad()\nb = a + 1") == ["a = (mul x 2)", "retain a", "b = (add a 1)"]
    assert program.statements[1] == RetainGrad("a", Pos(2, 1))
    assert show("x.retain_grad()") == ["retain x"]
    assert show("y = x; x . retain_grad ( ) ;") == ["y = x", "retain x"]


def test_reassignment_keeps_every_statement_in_order():
    assert show("a = x\na = a.detach()\na = a * 2") == ["a = x", "a = (detach a)", "a = (mul a 2)"]


def test_program_keeps_its_source():
    source = "y = x  # hi\n"
    program = parse(source)
    assert program.source == source
    assert isinstance(program.statements, tuple)


def test_statement_positions():
    program = parse("a = 1\n\n   b = 2; c = 3\n\tx.retain_grad()")
    assert [s.pos for s in program.statements] == [Pos(1, 1), Pos(3, 4), Pos(3, 11), Pos(4, 2)]


# ---------------------------------------------------------------------------------------
# Separators, comments, continuation


@pytest.mark.parametrize(
    "source",
    [
        "a = 1; b = 2",
        "a = 1\nb = 2",
        "a = 1\r\nb = 2\r\n",
        "a = 1\rb = 2",
        "\n\n a = 1 ;; ;\n\n\tb = 2;\n\n",
        ";a = 1;b = 2;",
        "# start\na = 1  # one\n# between\nb = 2 # two",
        "a = 1 # comment with ; and = and (\nb = 2",
        "a = 1 # non-ASCII in a comment: résumé × ÷ λ\nb = 2",
        "a = 1\t;\tb = 2",
    ],
)
def test_separators_and_comments(source):
    assert show(source) == ["a = 1", "b = 2"]


def test_newlines_inside_parentheses_continue_the_expression():
    source = "y = (a +\n     b\n     # a comment inside\n     * c)\nz = exp(\n  y,\n)\n"
    assert show(source) == ["y = (add a (mul b c))", "z = (exp y)"]
    program = parse(source)
    assert program.statements[1].pos == Pos(5, 1)
    assert program.statements[0].value.args[1].pos == Pos(4, 6)


def test_newline_ends_a_statement_outside_parentheses():
    assert error("y = a +\nb").message == "expected an expression, found end of line"


def test_crlf_positions():
    program = parse("a = 1\r\nb = (x +\r\n  y)\r\nc = 3")
    assert [s.pos for s in program.statements] == [Pos(1, 1), Pos(2, 1), Pos(4, 1)]
    assert program.statements[1].value.args[1].pos == Pos(3, 3)
    e = error("a = 1\r\nb = x +\r\n")
    assert (e.line, e.col) == (2, 8)


# ---------------------------------------------------------------------------------------
# Numbers, names and pi


@pytest.mark.parametrize(
    "text, value",
    [
        ("2", 2.0),
        ("0", 0.0),
        ("0.5", 0.5),
        (".5", 0.5),
        ("2.", 2.0),
        ("1e-3", 1e-3),
        ("1E+3", 1e3),
        ("1e3", 1e3),
        ("2.5e10", 2.5e10),
        ("1.e5", 1e5),
        (".5e-2", 0.5e-2),
        ("1e999", math.inf),
        ("1e-999", 0.0),
    ],
)
def test_numbers(text, value):
    number = value_of(f"y = {text}")
    assert isinstance(number, Number)
    assert number.value == value
    assert number.text == text
    assert number.pos == Pos(1, 5)


def test_negative_number_is_neg_of_a_number():
    assert expr("-2") == "(neg 2)"


def test_pi():
    number = value_of("y = pi")
    assert number == Number(math.pi, "pi", Pos(1, 5))
    assert expr("2 * pi") == "(mul 2 pi)"


def test_huge_literals_do_not_hang():
    number = value_of("y = " + "9" * 5000)
    assert number.value == math.inf
    assert value_of("y = 0." + "0" * 5000 + "1").value == 0.0
    assert value_of("y = 1e" + "9" * 5000).value == math.inf


@pytest.mark.parametrize("name", ["x", "X", "_", "_x1", "x_y_z", "abc123", "match", "case", "__class__"])
def test_names(name):
    assert show(f"{name} = {name} + 1") == [f"{name} = (add {name} 1)"]


def test_name_positions():
    value = value_of("y = foo * bar")
    assert value.args[0] == Name("foo", Pos(1, 5))
    assert value.args[1] == Name("bar", Pos(1, 11))


@pytest.mark.parametrize("soft", keyword.softkwlist)
def test_soft_keywords_are_names(soft):
    assert show(f"{soft} = {soft}") == [f"{soft} = {soft}"]


# ---------------------------------------------------------------------------------------
# Calls and methods


def test_function_call():
    value = value_of("y = exp(x + 1)")
    assert sx(value) == "(exp (add x 1))"
    assert value.pos == Pos(1, 5)


def test_function_call_with_spaces_and_trailing_comma():
    assert expr("exp (x)") == "(exp x)"
    assert expr("exp(x,)") == "(exp x)"
    assert expr("pow(x, 2,)") == "(pow x 2)"


def test_nested_calls():
    assert expr("exp(log(sin(x)) * 2)") == "(exp (mul (log (sin x)) 2))"


def test_methods():
    assert expr("x.exp()") == "(exp x)"
    assert expr("(x + y).sum()") == "(sum (add x y))"
    assert expr("x.pow(2)") == "(pow x 2)"
    assert expr("x.exp().sum()") == "(sum (exp x))"
    assert expr("x.exp().pow(y.log()).mean()") == "(mean (pow (exp x) (log y)))"
    assert expr("(2).exp()") == "(exp 2)"
    assert expr("pi.sin()") == "(sin pi)"
    assert expr("x . exp ( )") == "(exp x)"


def test_method_position_is_the_method_name():
    value = value_of("y = x.exp().sum()")
    assert value.pos == Pos(1, 13)
    assert value.args[0].pos == Pos(1, 7)


def test_long_method_chain_does_not_recurse():
    value = parse_with_little_stack("y = x" + ".exp()" * 20_000).statements[0].value
    assert sx(value) == "(exp " * 20_000 + "x" + ")" * 20_000


@pytest.mark.parametrize("name", sorted(ops.FUNCTIONS))
def test_every_function_of_the_table(name):
    call = sample_call(name)
    if name in ops.VOCABULARY.methods:  # a method of its own signature (x.where(c, y) is where(c, x, y))
        return
    parsed = parse(f"b = {call}").statements[0].value
    assert parsed.op == ops.VOCABULARY.functions[name][0].op
    first = ops.VOCABULARY.functions[name][0].params[0]
    if first.kind is syntax.ParamKind.TENSOR and call.startswith(f"{name}(a0"):
        method = parse(f"b = a0.{name}({call[len(name) + 3:].lstrip(', ')}").statements[0].value
        assert (method.op, sx(method), method.params) == (parsed.op, sx(parsed), parsed.params)


SAMPLE = {syntax.ParamKind.INT: "0", syntax.ParamKind.INTS: "0", syntax.ParamKind.FLOAT: "1.0",
          syntax.ParamKind.BOOL: "True", syntax.ParamKind.DATA: "[1.0, 2.0]", syntax.ParamKind.TENSORS: "[a0, a1]"}


def sample_call(name: str) -> str:
    """`name(...)` with the first signature's required arguments: operands a0, a1, ...,
    static ones a literal of their kind."""
    signature = ops.VOCABULARY.functions[name][0]
    args, k = [], 0
    for param in signature.params:
        if param.default is not syntax.REQUIRED:
            continue
        if param.kind in (syntax.ParamKind.TENSOR, syntax.ParamKind.NUMBER):
            args.append(f"a{k}")
            k += 1
        elif param.kind is syntax.ParamKind.CHOICE:
            args.append(f"'{param.choices[0]}'")
        else:
            args.append(SAMPLE[param.kind])
    return f"{name}({', '.join(args)})"


# Names with one signature of fixed positional parameters, all of them operands.
FIXED = sorted(name for name, sigs in ops.VOCABULARY.functions.items()
               if len(sigs) == 1 and all(p.kind is syntax.ParamKind.TENSOR and p.default is syntax.REQUIRED
                                         and not p.varargs and not p.keyword_only for p in sigs[0].params))


@pytest.mark.parametrize("name", [n for n in FIXED if n not in ops.VOCABULARY.methods])
def test_every_function_checks_its_arity(name):
    arity = len(ops.VOCABULARY.functions[name][0].params)
    e = error(f"y = {name}({', '.join(['x'] * (arity + 1))})")
    noun = "argument" if arity == 1 else "arguments"
    assert (e.line, e.col, e.message) == (1, 5, f"{name}() takes {arity} {noun}, got {arity + 1}")
    e = error(f"y = x.{name}({', '.join(['x'] * arity)})")
    assert (e.line, e.col, e.message) == (1, 7, f"{name}() takes {arity} {noun}, got {arity + 1}")
    assert "receiver" in e.hint


@pytest.mark.parametrize("name", sorted(ops.FUNCTIONS))
def test_a_function_name_may_name_a_tensor_but_not_both(name):
    # As in Python: `t = torch.tensor(...)` makes t a tensor; torch.t stays callable so.
    program = parse(f"{name} = x * 2; b = {name} + 1")
    assert [s.target for s in program.statements] == [name, "b"]
    assert isinstance(parse(f"b = {name} + x").statements[0].value.args[0], syntax.Name)
    e = error(f"{name} = x\nb = {name}(x)")
    assert (e.line, e.col, e.message) == (2, 5, f"'{name}' is a tensor in this program, not a function")
    assert e.hint == f"call torch's: torch.{name}(...), or the method: x.{name}(...)"
    call = sample_call(name)
    e = error(f"c = {call}; b = {name} + x")
    assert (e.line, e.col, e.message) == (1, 11 + len(call), f"'{name}' is a function, not a value")
    assert e.hint == f"call it: {name}(...)"
    e = error(f"c = {call}; {name} = x")
    assert e.message == f"cannot assign to '{name}': it is called as a function above"


def test_operators_are_not_functions():
    for name in ("add", "sub", "mul", "div", "neg", "pos"):
        assert name not in ops.FUNCTIONS
    e = error("y = add(x, 1)")
    assert (e.col, e.message, e.hint) == (5, "unknown function 'add'", "use the operator '+'")
    assert show("add = x") == ["add = x"]  # a plain name, since no function is called so


# ---------------------------------------------------------------------------------------
# Errors: message, line and column


@pytest.mark.parametrize(
    "source, line, col, message",
    [
        # statements that are not assignments
        ("x + 1", 1, 1, "expected an assignment NAME = EXPR"),
        ("exp(x)", 1, 1, "expected an assignment NAME = EXPR"),
        ("a.b = 1", 1, 1, "expected an assignment NAME = EXPR"),
        ("x + 1 = 2", 1, 1, "expected an assignment NAME = EXPR"),
        ("x.exp()", 1, 1, "expected an assignment NAME = EXPR"),
        ("(x) = 1", 1, 1, "expected an assignment NAME = EXPR"),
        ("y", 1, 1, "expected an assignment NAME = EXPR"),
        ("= 1", 1, 1, "expected an assignment NAME = EXPR"),
        ("a = 1\n  2 * a", 2, 3, "expected an assignment NAME = EXPR"),
        ("x = 1 = 2", 1, 7, "expected an operator, ';' or a newline, found '='"),
        ("y = 1 2", 1, 7, "expected an operator, ';' or a newline, found number '2'"),
        ("y = x z = 2", 1, 7, "expected an operator, ';' or a newline, found name 'z'"),
        ("y = 1, 2", 1, 6, "expected an operator, ';' or a newline, found ','"),
        ("y = (x)(1)", 1, 8, "expected an operator, ';' or a newline, found '('"),
        # retain_grad
        ("y = x.retain_grad()", 1, 7, "retain_grad() is only allowed as a whole statement: NAME.retain_grad()"),
        ("y = x.retain_grad", 1, 7, "retain_grad() is only allowed as a whole statement: NAME.retain_grad()"),
        ("x.retain_grad() + 1", 1, 17, "expected ';' or a newline after retain_grad(), found '+'"),
        ("x.retain_grad().sum()", 1, 16, "expected ';' or a newline after retain_grad(), found '.'"),
        ("x.retain_grad(1)", 1, 15, "retain_grad() takes no arguments"),
        ("x.retain_grad", 1, 14, "expected '(' after 'retain_grad', found end of input"),
        ("x.retain_grad(", 1, 14, "'(' was never closed"),
        ("pi.retain_grad()", 1, 1, "cannot call retain_grad() on the constant 'pi'"),
        ("b = exp(x)\nexp.retain_grad()", 2, 1, "'exp' is a function, not a value"),
        ("y = retain_grad(x)", 1, 5, "retain_grad is a method: write NAME.retain_grad() as a statement"),
        # names
        ("pi = 1", 1, 1, "cannot assign to the constant 'pi'"),
        ("y = 1\npi = y", 2, 1, "cannot assign to the constant 'pi'"),
        ("y = pi(2)", 1, 5, "'pi' is a constant, not a function"),
        ("y = foo(x)", 1, 5, "unknown function 'foo'"),
        ("y = x.foo()", 1, 7, "unknown method 'foo'"),
        ("y = x.__class__", 1, 7, "attribute access is not supported: '.__class__'"),
        ("y = x.Q", 1, 7, "attribute access is not supported: '.Q'"),
        ("y = x.exp", 1, 7, "attribute access is not supported: '.exp'"),
        ("y = x.__class__.__bases__", 1, 7, "attribute access is not supported: '.__class__'"),
        ("y = x.", 1, 7, "expected a method name after '.', found end of input"),
        ("y = x.1", 1, 6, "expected an operator, ';' or a newline, found number '.1'"),
        ("y = exp(x, dim=1)", 1, 12, "exp() got an unexpected keyword argument 'dim'"),
        ("y = exp(dim=1)", 1, 9, "exp() got an unexpected keyword argument 'dim'"),
        ("y = pow(x, exp=2)", 1, 12, "pow() got an unexpected keyword argument 'exp'"),
        ("y = exp(input=x, input=x)", 1, 18, "keyword argument repeated: input"),
        ("y = pow(input=x, 2)", 1, 18, "positional argument follows keyword argument"),
        # operators and dangling
        ("y = x +", 1, 8, "expected an expression, found end of input"),
        ("y = x +\n", 1, 8, "expected an expression, found end of line"),
        ("y = x + ;", 1, 9, "expected an expression, found ';'"),
        ("y = x +   ", 1, 11, "expected an expression, found end of input"),
        ("y = x + # comment", 1, 18, "expected an expression, found end of input"),
        ("y =", 1, 4, "expected an expression, found end of input"),
        ("y = -", 1, 6, "expected an expression, found end of input"),
        ("y = * x", 1, 5, "expected an expression, found '*'"),
        ("y = x * * z", 1, 9, "expected an expression, found '*'"),
        ("y = x ** ** z", 1, 10, "expected an expression, found '**'"),
        ("y = = 1", 1, 5, "expected an expression, found '='"),
        ("y = exp(x,,)", 1, 11, "expected an expression, found ','"),
        ("y = exp(,)", 1, 9, "expected an expression, found ','"),
        ("y = ...", 1, 5, "expected an expression, found '.'"),
        ("y = x // 2", 1, 7, "'//' (floor division) is not supported"),
        ("y = x % 2", 1, 7, "operator '%' is not supported"),
        ("y = x << 2", 1, 7, "shift operator '<<' is not supported"),
        ("y = x >> 2", 1, 7, "shift operator '>>' is not supported"),
        ("y = x == 1 == z", 1, 12, "comparisons do not chain here"),
        ("y = x < 1 < z", 1, 11, "comparisons do not chain here"),
        ("y = x <> 1", 1, 7, "'<' is not allowed"),
        ("y = x & 1", 1, 7, "bitwise operator '&' is not supported"),
        ("y = x | 1", 1, 7, "bitwise operator '|' is not supported"),
        ("y = ~x", 1, 5, "bitwise operator '~' is not supported"),
        ("y += 1", 1, 3, "augmented assignment '+=' is not supported"),
        ("y -= 1", 1, 3, "augmented assignment '-=' is not supported"),
        ("y *= 1", 1, 3, "augmented assignment '*=' is not supported"),
        ("y **= 1", 1, 3, "augmented assignment '**=' is not supported"),
        ("y //= 1", 1, 3, "augmented assignment '//=' is not supported"),
        ("y @= 1", 1, 3, "augmented assignment '@=' is not supported"),
        ("y := 1", 1, 3, "':=' (assignment expression) is not supported"),
        ("y = (z := 1)", 1, 8, "':=' (assignment expression) is not supported"),
        ("y = x if x else z", 1, 7, "'if' is a Python keyword, not a name"),
        # characters
        ("y = 'a'", 1, 5, "a string is not a tensor"),
        ('y = "a"', 1, 5, "a string is not a tensor"),
        ("y = 'a", 1, 5, "unterminated string"),
        ("y = x[y]", 1, 7, "an index is an integer or a slice written in the program"),
        ("y = x[]", 1, 6, "empty subscript"),
        ("y = x[0", 1, 6, "'(' was never closed"),
        ("y = [1, 2]", 1, 5, "a list is not a tensor"),
        ("y = x.sum(dim=y)", 1, 15, "sum(): argument 'dim' must be an integer or a tuple of integers, not the name 'y'"),
        ("y = x.sum(keepdim=1)", 1, 19, "sum(): argument 'keepdim' must be True or False, not the number 1"),
        ("y = x.max(1)", 1, 7, "max() with these arguments returns a tuple (values, indices)"),
        ("y = x.max(1).foo", 1, 14, "attribute access is not supported: '.foo'"),
        ("v, i = exp(x)", 1, 8, "cannot unpack into 2 names: the value is one tensor"),
        ("v, i, j = x.max(1)", 1, 11, "cannot unpack 2 values (values, indices) into 3 names"),
        ("y = True", 1, 5, "'True' is not a tensor"),
        ("y = {}", 1, 5, "'{' is not allowed"),
        ("y = x }", 1, 7, "'}' is not allowed"),
        ("y = !x", 1, 5, "'!' is not allowed"),
        ("y = $x", 1, 5, "'$' is not allowed"),
        ("y = `x`", 1, 5, "'`' is not allowed"),
        ("y = x ? 1", 1, 7, "'?' is not allowed"),
        ("y = lambda: 1", 1, 5, "'lambda' is a Python keyword, not a name"),
        ("y = x: 1", 1, 6, "expected an operator, ';' or a newline, found ':'"),
        ("y = x + \\\n 1", 1, 9, "'\\' is not allowed"),
        ("y = x\x00", 1, 6, "control character U+0000 is not allowed"),
        ("y = x\x0c", 1, 6, "control character U+000C is not allowed"),
        ("y = x # a form feed \x0c in a comment", 1, 21, "control character U+000C is not allowed"),
        ("y = x\x0b", 1, 6, "control character U+000B is not allowed"),
        ("y = x\x7f", 1, 6, "control character U+007F is not allowed"),
        ("y = 2 × x", 1, 7, "non-ASCII character '×' (U+00D7 MULTIPLICATION SIGN) is not allowed"),
        ("y = é", 1, 5, "non-ASCII character 'é' (U+00E9 LATIN SMALL LETTER E WITH ACUTE) is not allowed"),
        ("y = xé", 1, 6, "non-ASCII character 'é' (U+00E9 LATIN SMALL LETTER E WITH ACUTE) is not allowed"),
        ("y = x\u00a0+ 1", 1, 6, "non-ASCII character U+00A0 NO-BREAK SPACE is not allowed"),
        ("y = x\u200b", 1, 6, "non-ASCII character U+200B ZERO WIDTH SPACE is not allowed"),
        ("y = x\u202e", 1, 6, "non-ASCII character U+202E RIGHT-TO-LEFT OVERRIDE is not allowed"),
        ("y = x\u2028", 1, 6, "non-ASCII character U+2028 LINE SEPARATOR is not allowed"),
        ("y = x # \u2028", 1, 9, "non-ASCII character U+2028 LINE SEPARATOR is not allowed"),
        ("y = x\ud800", 1, 6, "non-ASCII character U+D800 is not allowed"),
        ("y = ３", 1, 5, "non-ASCII character '３' (U+FF13 FULLWIDTH DIGIT THREE) is not allowed"),
        # numbers
        ("y = 2x", 1, 5, "invalid number '2x'"),
        ("y = 0x10", 1, 5, "invalid number '0x10'"),
        ("y = 0b101", 1, 5, "invalid number '0b101'"),
        ("y = 1e", 1, 5, "invalid number '1e'"),
        ("y = 1e+", 1, 5, "invalid number '1e'"),
        ("y = 2.5e-x", 1, 5, "invalid number '2.5e'"),
        ("y = 1e5x", 1, 5, "invalid number '1e5x'"),
        ("y = 1.2.3", 1, 5, "invalid number '1.2.3'"),
        ("y = 2.exp()", 1, 5, "invalid number '2.exp'"),
        ("y = 1_000", 1, 5, "invalid number '1_000'"),
        ("y = 3j", 1, 5, "invalid number '3j'"),
        # parentheses
        ("y = (x", 1, 5, "'(' was never closed"),
        ("y = (x + (z)", 1, 5, "'(' was never closed"),
        ("y = (x + (z", 1, 10, "'(' was never closed"),
        ("y = exp(x", 1, 8, "'(' was never closed"),
        ("y = (x +\n", 1, 5, "'(' was never closed"),
        ("y = (1 +\nz = 2", 1, 5, "'(' was never closed"),
        ("y = exp(x\nz = 2\n", 1, 8, "'(' was never closed"),
        ("y = x)", 1, 6, "unmatched ')'"),
        (")", 1, 1, "unmatched ')'"),
        ("y = 1\n)", 2, 1, "unmatched ')'"),
        ("y = )", 1, 5, "unmatched ')'"),
        ("y = (x))", 1, 8, "unmatched ')'"),
        ("y = ()", 1, 6, "empty parentheses: expected an expression before ')'"),
        ("y = (x,)", 1, 5, "a tuple is not a tensor"),
        ("y = (0, 1) + x", 1, 5, "a tuple is not a tensor"),
        ("y = (x y)", 1, 8, "expected an operator or ')', found name 'y'"),
        ("y = exp(x y)", 1, 11, "expected ',' or ')' after an argument, found name 'y'"),
        ("y = sum()", 1, 5, "sum() takes 1 argument, got 0"),
        # empty programs
        ("", 1, 1, "empty program"),
        ("   ", 1, 4, "empty program"),
        ("# nothing", 1, 10, "empty program"),
        ("\n\n", 2, 1, "empty program"),
        (";;\n ; \n", 2, 4, "empty program"),
    ],
)
def test_errors(source, line, col, message):
    e = error(source)
    assert (e.line, e.col, e.message) == (line, col, message)
    assert e.source == source


def test_first_error_in_reading_order_wins():
    e = error("y = x +\n$")
    assert (e.line, e.message) == (1, "expected an expression, found end of line")
    e = error("y = foo(x) $")
    assert e.message == "unknown function 'foo'"
    e = error("y = (1 2 $)")
    assert (e.col, e.message) == (8, "expected an operator or ')', found number '2'")
    e = error("y = (1 + $")
    assert (e.col, e.message) == (10, "'$' is not allowed")


def test_errors_on_later_lines():
    e = error("a = x\nb = a * 2\nc = b +* a\nd = 1")
    assert (e.line, e.col) == (3, 8)
    e = error("a = x\n\tb = 'q'")
    assert (e.line, e.col) == (2, 6)
    e = error("a = (x +\n  2 +\n  foo(a))")
    assert (e.line, e.col, e.message) == (3, 3, "unknown function 'foo'")


@pytest.mark.parametrize(
    "source, hint",
    [
        ("y = 2x", "to multiply, write 2*x"),
        ("y = 0x10", "hexadecimal, octal and binary literals are not supported"),
        ("y = 1e", "an exponent needs digits, as in 1e-3"),
        ("y = 1_000", "digit separators '_' are not supported"),
        ("y = 2 × x", "use '*' instead"),
        ("y = 2 · x", "use '*' instead"),
        ("y = 2 − x", "use '-' instead"),
        ("y = 2 – x", "use '-' instead"),
        ("y = 2 ÷ x", "use '/' instead"),
        ("y = x²", "use '**2' instead"),
        ("y = x\u00a0+ 1", "use a plain space"),
        ("y = x // 2", "use '/' for division"),
        ("y += 1", "write it out: NAME = NAME + EXPR"),
        ("y = exp(x) + exp", "call it: exp(...)"),
        ("y = x.exp", "call it: .exp()"),
        ("y = exp(x, dim=1)", "exp(input)"),
        ("x = 1 = 2", "chained assignment is not supported"),
        ("x + 1", "a statement is NAME = EXPR or NAME.retain_grad()"),
        ("", "write an assignment, such as y = x * 2"),
        ("y = sub(x, 1)", "use the operator '-'"),
    ],
)
def test_hints(source, hint):
    assert error(source).hint == hint


@pytest.mark.parametrize(
    "source, hint",
    [
        ("y = exq(x)", "did you mean 'exp'?"),
        ("y = sine(x)", "did you mean 'sin'?"),
        ("y = x.sun()", "did you mean 'sum'?"),
        ("y = x.meen()", "did you mean 'mean'?"),
        ("x.retain_gard()", "did you mean 'retain_grad'?"),
        ("y = x.retain_gard()", "did you mean 'retain_grad'?"),
        ("y = frobnicate(x)", None),
    ],
)
def test_did_you_mean(source, hint):
    assert error(source).hint == hint


def test_unknown_names_are_shortened_in_messages():
    e = error("y = " + "f" * 1000 + "(x)")
    assert len(e.message) < 100
    e = error("y = 2" + "x" * 1000)
    assert len(e.message) < 100


@pytest.mark.parametrize("word", keyword.kwlist)
def test_python_keywords_are_not_names(word):
    expected = f"'{word}' is a Python keyword, not a name"
    e = error(f"{word} = 1")
    assert (e.line, e.col, e.message) == (1, 1, expected)
    e = error(f"y = {word} + 1")
    if word in ("True", "False", "None"):  # values of arguments (keepdim=True), never tensors
        assert (e.line, e.col, e.message) == (1, 5, f"'{word}' is not a tensor")
        return
    assert (e.line, e.col, e.message) == (1, 5, expected)
    e = error(f"y = x.{word}()")
    assert (e.line, e.col, e.message) == (1, 7, expected)


def test_render_shows_the_line_and_a_caret():
    e = error("a = x\nb = a +* 2\n")
    assert e.render() == "line 2, column 8: expected an expression, found '*'\n  b = a +* 2\n         ^"
    e = error("y = 2 × x")
    assert e.render() == (
        "line 1, column 7: non-ASCII character '×' (U+00D7 MULTIPLICATION SIGN) is not allowed\n"
        "  y = 2 × x\n"
        "        ^\n"
        "hint: use '*' instead"
    )
    e = error("\ty = exq(x)")
    assert e.render().splitlines()[1:3] == ["  \ty = exq(x)", "  \t    ^"]


# ---------------------------------------------------------------------------------------
# Deep and long inputs: no recursion, linear time


def test_long_sum_does_not_recurse():
    n = 100_000
    value = parse_with_little_stack("y = " + " + ".join(["x"] * n)).statements[0].value
    assert sx(value) == "(add " * (n - 1) + "x" + " x)" * (n - 1)


def test_long_product_does_not_recurse():
    n = 100_000
    value = parse_with_little_stack("y = " + "*".join(["x"] * n)).statements[0].value
    assert sx(value) == "(mul " * (n - 1) + "x" + " x)" * (n - 1)


def test_many_unary_minus_signs_do_not_recurse():
    n = 50_000
    value = parse_with_little_stack("y = " + "- " * n + "x").statements[0].value
    assert sx(value) == "(neg " * n + "x" + ")" * n


def test_long_power_chain_is_right_associative_without_recursion():
    n = 3_000
    value = parse_with_little_stack("y = " + "**".join(["x"] * n)).statements[0].value
    assert sx(value) == "(pow x " * (n - 1) + "x" + ")" * (n - 1)
    value = parse_with_little_stack("y = " + "^-".join(["x"] * n)).statements[0].value
    assert sx(value) == "(pow x (neg " * (n - 1) + "x" + "))" * (n - 1)


def test_mixed_long_chain():
    n = 20_000
    value = parse_with_little_stack("y = " + "a * -b ** c + " * n + "d").statements[0].value
    left = value
    for _ in range(n):
        assert left.op == "add"
        assert sx(left.args[1]) in ("d", "(mul a (neg (pow b c)))")
        left = left.args[0]
    assert sx(left) == "(mul a (neg (pow b c)))"


def test_nesting_up_to_the_limit():
    depth = MAX_DEPTH
    assert depth == 100
    assert expr("(" * depth + "x" + ")" * depth) == "x"
    assert expr("exp(" * depth + "x" + ")" * depth) == "(exp " * depth + "x" + ")" * depth
    assert expr("x.pow(" * depth + "2" + ")" * depth) == "(pow x " * depth + "2" + ")" * depth
    mixed = "(exp(" * (depth // 2) + "x" + "))" * (depth // 2)
    assert expr(mixed) == "(exp " * (depth // 2) + "x" + ")" * (depth // 2)


@pytest.mark.parametrize(
    "opener",
    ["(", "exp(", "(-", "pow(1, ", "x.pow("],
)
def test_nesting_beyond_the_limit(opener):
    source = "y = " + opener * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1)
    e = error(source)
    assert e.message == "expression nested too deeply (more than 100 levels)"
    assert e.line == 1
    assert source[e.col - 1] == "("
    assert source[: e.col].count("(") == MAX_DEPTH + 1


@pytest.mark.parametrize(
    "source",
    ["y = " + "(" * 100_000, "y = " + "(" * 100_000 + "x" + ")" * 100_000, "y = " + "exp(" * 50_000 + "x"],
)
def test_hostile_nesting_is_an_error_not_a_crash(source):
    e = error(source)
    assert e.message == "expression nested too deeply (more than 100 levels)"
    assert source[e.col - 1] == "("
    assert source[: e.col].count("(") == MAX_DEPTH + 1


def test_many_statements():
    n = 30_000  # 700 KB, 60,000 operations: within the limits
    source = "".join(f"a{i} = a{i - 1} * 2 + x\n" for i in range(1, n + 1))
    program = parse(source)
    assert len(program.statements) == n
    last = program.statements[-1]
    assert last.target == f"a{n}"
    assert last.pos == Pos(n, 1)
    assert sx(last.value) == f"(add (mul a{n - 1} 2) x)"


def test_limits_on_program_size_and_operations():
    from gradcalc.errors import InputError
    from gradcalc.lang.parser import MAX_OPERATIONS, MAX_PROGRAM_CHARS

    with pytest.raises(InputError, match="longer than 1,000,000 characters"):
        parse("b = x" + " " * MAX_PROGRAM_CHARS)
    e = error("b = " + "*".join(["x"] * (MAX_OPERATIONS + 2)))
    assert e.message == "more than 150,000 operations" and e.line == 1
    parse("b = " + "*".join(["x"] * MAX_OPERATIONS))  # the limit itself is fine


def test_error_after_many_statements_has_the_right_line():
    n = 50_000
    e = error("a = x\n" * n + "b = a +\n")
    assert (e.line, e.col) == (n + 1, 8)


# ---------------------------------------------------------------------------------------
# Safety: the text is never executed


def test_parser_never_imports_sympy():
    code = "import gradcalc.lang.parser, sys; assert 'sympy' not in sys.modules, 'sympy imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr


def test_parser_source_uses_no_evaluation():
    tree = ast.parse(Path(__file__).resolve().parents[1].joinpath("gradcalc", "lang", "parser.py").read_text())
    forbidden = {"eval", "exec", "compile", "__import__", "sympify", "parse_expr", "lambdify", "getattr"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            assert node.id not in forbidden, node.id
        if isinstance(node, ast.Attribute):
            assert node.attr not in forbidden - {"compile"}, node.attr
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
            assert not any(m.split(".")[0] in ("sympy", "ast", "builtins") for m in modules), modules


@pytest.mark.parametrize(
    "source",
    [
        "y = __import__('os').system('echo hi')",
        "y = x.__class__.__mro__",
        "y = exec('1')",
        "y = eval(x)",
        "y = (lambda: 1)()",
        "y = [c for c in ()]",
        "import os",
        "y = open('/etc/passwd')",
        "y = x; del x",
        "y = f'{x}'",
        "y = sum(x) if True else 0",
        "y = x.exp.__globals__",
        "y = getattr(x, 'exp')()",
    ],
)
def test_escape_attempts_are_syntax_errors(source):
    e = error(source)
    assert e.line >= 1 and e.col >= 1


def test_unknown_function_is_never_called_or_looked_up_outside_the_table():
    e = error("y = print(x)")
    assert e.message == "unknown function 'print'"
    e = error("y = x.__add__(x)")
    assert e.message == "unknown method '__add__'"


# ---------------------------------------------------------------------------------------
# Properties: Python's own parser as the oracle of precedence, and no crash on any text

_PY_OPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.MatMult: "matmul",
           ast.Pow: "pow", ast.USub: "neg", ast.UAdd: "pos"}


def python_sx(node: ast.AST) -> str:
    """How Python itself groups an expression, in the form of `sx` (numbers as floats)."""
    if isinstance(node, ast.BinOp):
        return f"({_PY_OPS[type(node.op)]} {python_sx(node.left)} {python_sx(node.right)})"
    if isinstance(node, ast.UnaryOp):
        return f"({_PY_OPS[type(node.op)]} {python_sx(node.operand)})"
    if isinstance(node, ast.Call):
        func = node.func
        args = [func.value, *node.args] if isinstance(func, ast.Attribute) else node.args
        name = func.attr if isinstance(func, ast.Attribute) else func.id
        return f"({name} {' '.join(python_sx(a) for a in args)})"
    if isinstance(node, ast.Constant):
        return repr(float(node.value))
    assert isinstance(node, ast.Name)
    return node.id


def float_sx(expr) -> str:
    out: list[str] = []
    stack = [expr]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, Number) and item.text != "pi":
            out.append(repr(item.value))
        elif isinstance(item, (Name, Number)):
            out.append(item.text if isinstance(item, Number) else item.id)
        else:
            out.append("(" + item.op)
            stack.append(")")
            for arg in reversed(item.args):
                stack.append(arg)
                stack.append(" ")
    return "".join(out)


_atoms = st.sampled_from(["x", "y", "pi", "2", "0.5", ".5", "1e-3", "3.", "(x)"])
_expressions = st.recursive(
    _atoms,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from([" + ", " - ", "*", " / ", " @ ", "**", " ** "]), inner).map("".join),
        st.tuples(st.sampled_from(["-", "+", "- "]), inner).map("".join),
        inner.map(lambda e: f"({e})"),
        inner.map(lambda e: f"exp({e})"),
        st.tuples(inner, inner).map(lambda ab: f"pow({ab[0]}, {ab[1]})"),
        inner.map(lambda e: f"({e}).sum()"),
        st.tuples(inner, inner).map(lambda ab: f"({ab[0]}).pow({ab[1]})"),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_expressions)
def test_grouping_agrees_with_python(text):
    assert float_sx(value_of(f"y = {text}")) == python_sx(ast.parse(text, mode="eval").body)
    assert float_sx(value_of(f"y = {text.replace('**', '^')}")) == python_sx(ast.parse(text, mode="eval").body)


_PIECES = ["x", "y", "pi", "exp", "pow", "sum", "retain_grad", "1", "2.5", ".5", "1e3", "e", " ", "\t",
           "\n", "\r\n", "\r", ";", "=", "+", "-", "*", "/", "**", "^", "@", "(", ")", ",", ".", "#",
           "$", "'", "×", "\u2028", "\x0c", "lambda", "[", "%", "//", "==", "+=", ":"]


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.lists(st.sampled_from(_PIECES), max_size=16).map("".join), st.text(max_size=20)))
def test_any_text_parses_or_fails_cleanly_at_a_real_position(source):
    try:
        parse(source)
    except ParseError as e:
        lines = source.splitlines() or [""]
        assert 1 <= e.line <= len(lines)
        assert 1 <= e.col <= len(lines[e.line - 1]) + 1
        assert e.render().startswith(f"line {e.line}, column {e.col}: ")


# ---------------------------------------------------------------------------------------
# torch's prefixes, as a pasted PyTorch expression writes them


@pytest.mark.parametrize("name", sorted(ops.FUNCTIONS))
def test_every_function_with_torch_and_functional_prefixes_is_the_bare_function(name):
    call = sample_call(name)
    bare = parse(f"b = {call}").statements[0].value
    for prefix in ("torch.", "torch.nn.functional.", "F."):
        prefixed = parse(f"b = {prefix}{call}").statements[0].value
        assert (sx(prefixed), prefixed.params) == (sx(bare), bare.params), prefix


@pytest.mark.parametrize("source, expected", [
    ("b = F.relu(x)", "(relu x)"),                 # F is torch.nn.functional ...
    ("b = F.sum()", "(sum F)"),                    # ... but a call that needs a receiver is a method of F
    ("b = F.dot(y)", "(dot F y)"),
    ("F = x * 2; b = F.relu()", "(relu F)"),       # a program that uses F as a tensor keeps it one
    ("b = torch.sin(x).sum()", "(sum (sin x))"),
    ("b = torch.pi * x", "(mul pi x)"),
    ("b = torch * 2", "(mul torch 2)"),            # a tensor named torch, not followed by '.'
])
def test_prefixes_and_a_tensor_named_F(source, expected):
    assert sx(parse(source).statements[-1].value) == expected


@pytest.mark.parametrize("source, col, message, hint", [
    ("b = torch.sine(x)", 11, "unknown function 'torch.sine'", "did you mean 'torch.sin'?"),
    ("b = torch.nn.relu(x)", 14, "unknown function 'torch.nn.relu'",
     "torch.nn's functions are torch.nn.functional's: torch.nn.functional.relu"),
    ("b = torch.exp", 11, "attribute access is not supported: 'torch.exp'", "call it: torch.exp(...)"),
    ("b = torch.os.system(x)", 11, "attribute access is not supported: 'torch.os'", None),
    ("b = torch.(x)", 11, "expected a function name after 'torch.', found '('", None),
    ("b = torch.nn.functional.__class__", 25, "attribute access is not supported: 'torch.nn.functional.__class__'",
     None),
])
def test_prefix_errors(source, col, message, hint):
    with pytest.raises(ParseError) as info:
        parse(source)
    assert (info.value.line, info.value.col, info.value.message, info.value.hint) == (1, col, message, hint)
