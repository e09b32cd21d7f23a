"""libsinsp's grammar: what Falco accepts and rejects, error messages and positions, canonical text."""

from __future__ import annotations

import pytest

from processor.engine.ast import (
    And,
    Check,
    FieldRef,
    FieldValue,
    Identifier,
    ListValue,
    Not,
    Or,
    StrValue,
    Transformer,
    as_string,
    substitute_identifiers,
    walk,
)
from processor.engine.parser import ConditionSyntaxError, parse_condition

# From libsinsp's filter_parser.ut.cpp and Falco's parser smoke tests (falco-engine.md b.1/b.2).
ACCEPTED = [
    "  a", "(a)", "a and b", "a and b and c", "a and b and(c)", "(a)and(b)and(c)", "(a and b)", "a or b",
    "a or b or c", "a or b or(c)", "(a)or(b)or(c)", "(a or b)", "(a.a exists and b)", "(a.a exists) and (b)",
    "a.a exists and b", "a.a=1 or b.b=2 and c", "not (a)", "not(a)", "not (not (a))", "not (a.b=1)",
    "not (a.a exists)", "not a", "a.b = 1 and not a", "not not a", "(not not a)", "not not(a)", "not(not(a))",
    "not(a)and(not(b))", "not a.b=1", "not a.a exists", "a.b = bla", "a.b = 'bla'", "a.b = not",
    "a.b contains bla", "a.b icontains 'bla'", "a.g in (1, 'a', b)", "evt.dir=> and fd.name=*.log",
    "a.g in (1, 'a', b.c)", "a.b = a.a", "a and notb", "a or notb", "notz and a and b", "macro and not_macro",
    "macro and not not_macro", "macro and not(not_macro)", "((macro) and (not_macro))", "macro and and_macro",
    "((macro) and (and_macro))", "macro and or_macro", "((macro) and (or_macro))",
    "evt.arg[0] contains /bin", "evt.arg[a] contains /bin",
    # strings
    "test.str = testval", "test.str = 0a!@#456:/\\.;!$%^&*[]{}|", 'test.str = ""', "test.str = ''",
    'test.str = "0a!@#456:/.; !$%^&*[]{}|"', 'test.str = "test value"', "test.str = 'test value'",
    "test.str[0a!@#456:/\\.;!$%^&*(){}|] = testval", "test.str[aaaa1] = a", "test.str[1234] = a",
    "test.str[+0.25e+10] = a", 'test.str[""] = empty', "test.str['a aa'] = a",
    'test.str["test \\"with\\"escaping"] = a', 'test.str = "escape double quote \\" "',
    "test.str = 'escape single quote \\' '", "test.str = 'multiple escape single quote \\' \\\\''",
    "test.str = 'mixed \"'", 'test.str = "mixed \'"', 'test.str = "bad escape \\ "',
    # numbers
    "test.num > 1000", "test.num < +1", "test.num >= -1", "test.num <= 0x12345", "test.num <= 0XaB00AB",
    "test.num > 1.2", "test.num < -1.2", "test.num > -0.1222e+10", "test.str = !0.1222e+10",
    "test.str = 0xAAA.1", "test.str = 0aaaaa", "test.str = a",
    # lists
    "test.list in ()", "test.list in (a)", "test.list in ('single-quoted')", 'test.list in ("double-quoted")',
    "test.list in (0a!@#456:/\\.;!$%^&*[]{}|)", "test.list in (value, \"value\", 'value')",
    "test.list intersects (value)", "test.list pmatch (value)", "test.op in()",
    # operators
    "test.op exists and macro", "test.op exists", "test.op = value", "test.op == value", "test.op != value",
    "test.op glob value", "test.op iglob value", "test.op contains value", "test.op icontains value",
    "test.op bcontains 48545450", "test.op startswith value", "test.op bstartswith 12ab001fc5",
    "test.op endswith value", "test.op regex value", "test.op > 1", "test.op < 1", "test.op >= 1",
    "test.op <= 1", "test.op existsand macro", "test.op =value",
    # transformers
    "tolower(test.field) exists", "toupper(test.field) exists", "b64(test.field) exists",
    "basename(test.field) = x", "len(test.field) > 3", "b64(toupper(test.field)) exists",
    "b64( test.field) exists", "b64(test.field\n) exists", "b64(b64(test.field))\n exists",
    "some.field = test.field", "some.field = val(test.field)", "some.field = tolower(test.field)",
    "some.field in val(test.field)", "some.field pmatch b64(test.field)", "some.field > val(test.field)",
    "tolower(some.field) = b64(test.field) or tolower(other.field) = tolower(anoter.field)",
    "some.field = b64 and(some_macro)", "some.field = 'some_fake_transformer(some_macro)'",
    'join("-", (fd.name, proc.name)) = a-b', 'concat(proc.name, "-", proc.pname) = a-b',
    'getopt(proc.args, "o:")[o] = x', "len(ka.user.groups) > 2",
    # modifiers
    "proc.name startswith oneof (sshd, sudo)", "proc.name = anyof (a, b)", "proc.name != allof (a)",
    "proc.name == oneof", "proc.name == oneof oneof",
]

REJECTED = [
    "a andb", "aand b", "a and b and", "a and b or", "a and b not", "and a", "or a", "a or b and", "a or b or",
    "a or b not", "a not b and", "a not b or", "a not b not", "a orb", "aor b", "a and or b", "a andor b",
    "a not b", "a notb", "anot b", "a andnot b", "a andnotb", "(a)andnot(b)", "a ornot b", "a ornotb",
    "(a)ornot(b)", "evt.arg[] contains /bin", "a.b = b = 1", "(a.b = 1", "a.a invalidoperator xxx",
    "macro > 12", "a.g in ( 1 ,, , b)", "#a and b; a and b", "#a and b; # ; ; a and b",
    "evt.dir=> and fd.name=/var/lo);g/httpd.log",
    "test.str = a,", "test.str = a=", "test.str = a('\")", "test.str = '", 'test.str = "', "test.str = '\"",
    "test.str = \"'", "test.str = missing start quote", "test.str = 'missing end quote",
    'test.str = "broken escape double quote""', "test.str = 'broken escape single quote''",
    "test.str = \"mixed \\'\"", "test.str = 'mixed \\\"'",
    "test.str[0a!@#456:/\\.;!$%^&*[]{}] = testval", "test.str[] = testval", "test.str[[] = testval",
    "test.str[]] = testval", "test.str['''] = a", "test.str[aaa\"] = a", "test.str[   test   ] = testval",
    "test.str[ = testval", "test.str] = testval",
    "test.num > !0.1222e+10", "test.num < 0xAAA.1", "test.num >= 0aaaaa", "test.num <= a",
    "test.list in (", "test.list in )", "test.list in (value,)", "test.list in (value,,)", "test.list in (,)",
    "test.list in (,   ,)", "test.list > (value)", "test.list = (value)", "test.list startswith (value)",
    "test.op ExIsTs", "test.op exists something", "test.op ===", "test.op !==", "test.op startswithvalue",
    "test.op containsvalue", "test.op icontainsvalue", "test.op globvalue", "test.op iglobvalue",
    "val(test.field) exists", "b64(val(test.field)) exists", "b64(test.field [1]) exists",
    "some_fake_transformer(test.field) exists", "b64 (test.field) exists", "b64(testfield)) exists",
    "b64(b64)) exists", "b64(test.field exists", "(test.field) exists", "a(test.field) exists",
    "some.field = val(test.field [1])", "some.field = val(val(test.field))", "some.field = b64(val(test.field))",
    "some.field = b64 (test.field)", "some.field = (b64(test.field))", "some.field = b64(test.field))",
    "some.field = b64and(some_macro)", "some.field in (b64(test.field))", "some.field in (a, b64(test.field))",
    "proc.name ==oneof (a)", "proc.name == oneof(a)", "proc.num > oneof (1, 2)",
    'join("-", ((fd.name))) = /tmp', "",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_accepts_what_libsinsp_accepts(text: str) -> None:
    parse_condition(text)


@pytest.mark.parametrize("text", REJECTED)
def test_rejects_what_libsinsp_rejects(text: str) -> None:
    with pytest.raises(ConditionSyntaxError):
        parse_condition(text)


@pytest.mark.parametrize(
    ("text", "message", "pos"),
    [
        ("", "filter input string is empty", 0),
        ("evt.type = execve)", "unexpected token after 'execve', expecting 'or', 'and'", 17),
        ("evt.type in (open, openat))", "unexpected token after ')', expecting 'or', 'and'", 26),
        ("a andb", "expected blank or '(' after 'and'", 5),
        ("a orb", "expected blank or '(' after 'or'", 4),
        ("(a", "expected a ')' token", 2),
        (")", "expected a '(' token, a field check, or an identifier", 0),
        ('a.b = "\\q"', "unsupported string escape sequence: \\q", 10),
        ("a.b = \"\\'\"", "invalid \\' escape in \"-quoted string", 10),
        ("test.str[] = x", "expected a valid field argument: a quoted string or a bare string", 9),
        ("test.num <= a", "expected a number value or a field with a valid transformer: 'val', 'tolower', "
                          "'toupper', 'b64', 'basename', 'len', 'join', 'concat', 'getopt'", 12),
        ("test.op ExIsTs", "expected a valid check operator: one of 'exists', '<=', '<', '>=', '>', '==', '=', "
                           "'!=', 'glob', 'iglob', 'contains', 'icontains', 'bcontains', 'startswith', "
                           "'bstartswith', 'endswith', 'regex', 'intersects', 'in', 'pmatch'", 8),
        ("some.field = val(b64(x.y))", "expected a field within 'val' transformer", 17),
    ],
)
def test_errors_carry_libsinsp_messages_and_positions(text: str, message: str, pos: int) -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse_condition(text)
    assert (info.value.message, info.value.pos) == (message, pos)


def test_string_escapes() -> None:
    value = parse_condition('a.b = "t\\tb\\x41\\/\\\\ \\ end"')
    assert value == Check(FieldRef("a.b"), "=", StrValue("t\tbA/\\ \\end"))
    assert parse_condition("a.b = 'it\\'s'") == Check(FieldRef("a.b"), "=", StrValue("it's"))


def test_precedence_not_over_and_over_or() -> None:
    tree = parse_condition("a or b and not c")
    assert tree == Or([Identifier("a"), And([Identifier("b"), Not(Identifier("c"))])])


def test_even_number_of_nots_cancels() -> None:
    assert parse_condition("not not a") == Identifier("a")
    assert parse_condition("not not not not not(not not(not not_macro))") == Not(Not(Identifier("not_macro")))


def test_tree_shapes() -> None:
    tree = parse_condition("evt.name exists and evt.type in (a, b) and not evt.dir=< or proc.name=cat")
    assert tree == Or([
        And([
            Check(FieldRef("evt.name"), "exists"),
            Check(FieldRef("evt.type"), "in", ListValue([StrValue("a"), StrValue("b")])),
            Not(Check(FieldRef("evt.dir"), "=", StrValue("<"))),
        ]),
        Check(FieldRef("proc.name"), "=", StrValue("cat")),
    ])
    assert parse_condition("proc.aname[2]=sshd") == Check(FieldRef("proc.aname", "2"), "=", StrValue("sshd"))
    assert parse_condition("evt.arg.flags contains O_TRUNC") == Check(
        FieldRef("evt.arg.flags"), "contains", StrValue("O_TRUNC"))
    assert parse_condition("proc.name = val(proc.pname)") == Check(
        FieldRef("proc.name"), "=", FieldValue(FieldRef("proc.pname")))
    assert parse_condition("tolower(proc.name) = b64(proc.pname)") == Check(
        Transformer("tolower", [FieldRef("proc.name")]), "=",
        FieldValue(Transformer("b64", [FieldRef("proc.pname")])))
    assert parse_condition("proc.name startswith oneof (a, b)") == Check(
        FieldRef("proc.name"), "startswith", ListValue([StrValue("a"), StrValue("b")]), "oneof")
    # a bare word after a list operator is a single value (a list name Falco did not substitute)
    assert parse_condition("proc.name in typo") == Check(FieldRef("proc.name"), "in", StrValue("typo"))


@pytest.mark.parametrize(
    ("text", "positions"),
    [
        ("proc.name=nginx", [("Check", 0), ("FieldRef", 0), ("StrValue", 10)]),
        ("proc.aname[3]=nginx", [("Check", 0), ("FieldRef", 0), ("StrValue", 14)]),
        ("proc.name = nginx", [("Check", 0), ("FieldRef", 0), ("StrValue", 12)]),
        ("proc.name in ( nginx, apache)", [("Check", 0), ("FieldRef", 0), ("ListValue", 13),
                                          ("StrValue", 15), ("StrValue", 22)]),
        ("not proc.name=nginx", [("Not", 0), ("Check", 4), ("FieldRef", 4), ("StrValue", 14)]),
        ("(proc.name=nginx or proc.name=apache)",
         [("Or", 1), ("Check", 1), ("FieldRef", 1), ("StrValue", 11), ("Check", 20), ("FieldRef", 20),
          ("StrValue", 30)]),
    ],
)
def test_positions_match_libsinsp(text: str, positions: list[tuple[str, int]]) -> None:
    got = [(type(n).__name__, n.pos) for n in walk(parse_condition(text))]
    assert got == positions


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("(proc.cmdline contains curl or proc.cmdline contains wget) and not proc.cmdline contains "
         '"curl 127.0.0.1"',
         '((proc.cmdline contains curl or proc.cmdline contains wget) and not proc.cmdline contains '
         '"curl 127.0.0.1")'),
        ("evt.type = open and not (proc.name startswith oneof (sshd, sudo) and fd.name startswith /etc/)",
         "(evt.type = open and not (proc.name startswith oneof (sshd, sudo) and fd.name startswith /etc/))"),
        ("evt.type=open and not proc.name = proc.pname", "(evt.type = open and not proc.name = proc.pname)"),
        ("a.b in ('x y', \"q\", z)", '(a.b in ("x y", q, z))'[1:-1]),
        ("a.b = 'it''", None),
        ("a.b = \"tab\\there\"", 'a.b = "tab\\there"'),
        ("a.b = 'say \"hi\"'", 'a.b = "say \\"hi\\""'),
        ("a.b = \"it's\"", 'a.b = "it\'s"'),
        ("a.b = 'back\\\\slash'", 'a.b = "back\\\\slash"'),
        ("test.str[\"a b\"] = x", 'test.str["a b"] = x'),
        ("not  not  not x", "not x"),
        ("a.b exists", "a.b exists"),
        ("a.b = val(c.d) and tolower(e.f) in (g)", "(a.b = val(c.d) and tolower(e.f) in (g))"),
        ("a and (b or c) and d", "(a and (b or c) and d)"),
    ],
)
def test_as_string_is_libsinsp_canonical_form(text: str, canonical: str | None) -> None:
    if canonical is None:
        with pytest.raises(ConditionSyntaxError):
            parse_condition(text)
        return
    assert as_string(parse_condition(text)) == canonical
    assert as_string(parse_condition(canonical)) == canonical


def test_substitute_identifiers_builds_a_new_tree() -> None:
    tree = parse_condition("open_write and not proc.name in (x) and not unknown")
    macro = parse_condition("evt.type = open and evt.is_open_write = true")
    out = substitute_identifiers(tree, lambda name: macro if name == "open_write" else None)
    assert as_string(out) == ("((evt.type = open and evt.is_open_write = true) and not proc.name in (x) "
                              "and not unknown)")
    assert as_string(tree) == "(open_write and not proc.name in (x) and not unknown)"


def test_depth_limit() -> None:
    deep = "(" * 300 + "a" + ")" * 300
    with pytest.raises(ConditionSyntaxError, match="exceeded max depth limit of 1000"):
        parse_condition(deep)
    assert parse_condition("(" * 150 + "a" + ")" * 150) == Identifier("a")
    with pytest.raises(ConditionSyntaxError, match="exceeded max depth limit of 10"):
        parse_condition("((((a))))", max_depth=10)


def test_every_condition_of_falcos_rule_files_parses(falco_rules) -> None:  # type: ignore[no-untyped-def]
    import yaml

    count = 0
    for path in sorted(falco_rules.glob("*.yaml")):
        for item in yaml.safe_load(path.read_text()) or []:
            if isinstance(item, dict) and "condition" in item:
                parse_condition(item["condition"])
                count += 1
    assert count > 500
