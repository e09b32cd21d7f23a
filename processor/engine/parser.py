"""libsinsp's condition grammar (filter/parser.cpp), token for token, with its error messages and positions.

A recursive-descent parser over one string with a cursor, like the original: the lexer tries token
kinds in libsinsp's order (so `a and notb`, `test.op existsand macro` and `a.b = not` parse as in Falco),
`m_last_token` feeds "unexpected token after 'X'", and errors carry the cursor offset at the failure.
"""

from __future__ import annotations

import re

from processor.engine.ast import (
    And,
    Check,
    FieldExpr,
    FieldRef,
    FieldValue,
    Identifier,
    ListValue,
    Node,
    Not,
    Or,
    StrValue,
    Transformer,
    Value,
)


class ConditionSyntaxError(ValueError):
    """A condition libsinsp's parser rejects; `pos` is the offset where parsing stopped."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


_BLANKS = " \t\b\r\n"
_RE_NOT_BLANK = re.compile(r"not[ \t\n\r\f\v]+")
_RE_IDENTIFIER = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*")
_RE_FIELD_NAME = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*(?:\.[a-zA-Z]+[a-zA-Z0-9_]*)+")
_RE_FIELD_ARG_BARE = re.compile(r"[^\]\[\"' \t\n\r\f\v]+")
_RE_HEX_NUM = re.compile(r"0[xX][0-9a-zA-Z]+")
_RE_NUMBER = re.compile(r"[+\-]?[0-9]+\.?[0-9]*(?:[eE][+\-][0-9]+)?")
_RE_BARE_STR = re.compile(r"[^()\"' \t\n\r\f\v=,]+")
_RE_MODIFIER = re.compile(r"(oneof|anyof|allof)[ \t\b\r\n]")

UNARY_OPS = ("exists",)
NUM_OPS = ("<=", "<", ">=", ">")
# The trailing blank is part of the word operators, as in libsinsp (`containsvalue` is no operator).
STR_OPS = ("==", "=", "!=", "glob ", "iglob ", "contains ", "icontains ", "bcontains ",
           "startswith ", "bstartswith ", "endswith ", "regex ")
LIST_OPS = ("intersects", "in", "pmatch")
MODIFIERS = ("oneof", "anyof", "allof")
# Single-argument transformers take a field or a nested transformer; the others take argument lists.
SINGLE_ARG_TRANSFORMERS = ("tolower", "toupper", "b64", "basename", "len")
MULTI_ARG_TRANSFORMERS = ("join", "concat", "getopt")
TRANSFORMERS = SINGLE_ARG_TRANSFORMERS + MULTI_ARG_TRANSFORMERS
_TRANSFORMER_TOKENS = tuple(t + "(" for t in TRANSFORMERS)


def supported_operators() -> list[str]:
    return [op.strip() for op in (*UNARY_OPS, *NUM_OPS, *STR_OPS, *LIST_OPS)]


def _token_list(values: list[str] | tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


_OPS_MSG = "expected a valid check operator: one of " + _token_list(supported_operators())
_TRANSFORMERS_MSG = _token_list(("val", *TRANSFORMERS))


def unescape_str(token: str) -> str:
    """libsinsp's `unescape_str` on a quoted token, delimiters included."""
    body = token[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    delimiter = token[0]
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        i += 1
        if c != "\\":
            out.append(c)
            continue
        if i >= n:
            break
        c = body[i]
        i += 1
        if c in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[c])
        elif c in " \\":  # `\<space>` yields a backslash: legacy rules rely on it
            out.append("\\")
        elif c == '"' or c == "'":
            if delimiter != c:
                other = "'" if c == '"' else '"'
                raise ValueError(f"invalid \\{c} escape in {other}-quoted string")
            out.append(c)
        elif c == "x" and _HEX2.fullmatch(body[i:i + 2]):
            out.append(chr(int(body[i:i + 2], 16)))
            i += 2
        else:
            raise ValueError("unsupported string escape sequence: \\" + c)
    return "".join(out)


_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "/": "/"}
_HEX2 = re.compile(r"[0-9a-fA-F]{2}")


class _Parser:
    __slots__ = ("text", "size", "idx", "last", "depth", "max_depth")

    def __init__(self, text: str, max_depth: int) -> None:
        self.text = text
        self.size = len(text)
        self.idx = 0
        self.last = ""
        self.depth = 0
        self.max_depth = max_depth

    def error(self, message: str) -> ConditionSyntaxError:
        return ConditionSyntaxError(message, self.idx)

    def enter(self) -> None:
        self.depth += 1
        if self.depth >= self.max_depth:
            raise self.error(f"exceeded max depth limit of {self.max_depth}")

    # -- grammar ------------------------------------------------------------------------------------

    def parse(self) -> Node:
        if not self.text:
            raise ConditionSyntaxError("filter input string is empty", 0)
        try:
            node = self.parse_or()
        except RecursionError:
            raise self.error(f"exceeded max depth limit of {self.max_depth}") from None
        if self.idx != self.size:
            raise self.error(f"unexpected token after '{self.last}', expecting 'or', 'and'")
        return node

    def parse_or(self) -> Node:
        self.enter()
        pos = self.idx
        self.lex_blank()
        nodes = [self.parse_and()]
        self.lex_blank()
        while self.lex_str("or"):
            if not self.lex_blank():
                if self.lex_str("("):
                    nodes.append(self.parse_embedded_remainder())
                else:
                    raise self.error("expected blank or '(' after 'or'")
            else:
                nodes.append(self.parse_and())
            self.lex_blank()
        self.depth -= 1
        return Or(nodes, pos=pos) if len(nodes) > 1 else nodes[0]

    def parse_and(self) -> Node:
        self.enter()
        pos = self.idx
        self.lex_blank()
        nodes = [self.parse_not()]
        self.lex_blank()
        while self.lex_str("and"):
            if not self.lex_blank():
                if self.lex_str("("):
                    nodes.append(self.parse_embedded_remainder())
                else:
                    raise self.error("expected blank or '(' after 'and'")
            else:
                nodes.append(self.parse_not())
            self.lex_blank()
        self.depth -= 1
        return And(nodes, pos=pos) if len(nodes) > 1 else nodes[0]

    def parse_not(self) -> Node:
        self.enter()
        pos = self.idx
        negated = False
        self.lex_blank()
        while self.lex_rgx(_RE_NOT_BLANK):
            negated = not negated
        if self.lex_str("not("):
            negated = not negated
            child = self.parse_embedded_remainder()
        else:
            child = self.parse_check()
        self.depth -= 1
        return Not(child, pos=pos) if negated else child

    def parse_embedded_remainder(self) -> Node:
        """The rest of `( Expr )` once `(` is consumed."""
        self.enter()
        self.lex_blank()
        child = self.parse_or()
        self.lex_blank()
        if not self.lex_str(")"):
            raise self.error("expected a ')' token")
        self.depth -= 1
        return child

    def parse_check(self) -> Node:
        self.enter()
        pos = self.idx
        self.lex_blank()
        if self.lex_str("("):
            node = self.parse_embedded_remainder()
        elif self.lex_rgx(_RE_FIELD_NAME):
            left: FieldExpr = self.parse_field_remainder(self.last, pos)
            node = self.parse_condition(left, pos)
        elif self.lex_str_list(_TRANSFORMER_TOKENS):
            self.lex_blank()
            left = self.parse_transformer_remainder(self.last[:-1], pos)
            node = self.parse_condition(left, pos)
        elif self.lex_rgx(_RE_IDENTIFIER):
            node = Identifier(self.last, pos=pos)
        else:
            raise self.error("expected a '(' token, a field check, or an identifier")
        self.depth -= 1
        return node

    def parse_field_remainder(self, name: str, pos: int) -> FieldRef:
        arg: str | None = None
        if self.lex_str("["):
            if not self.lex_quoted_str() and not self.lex_rgx(_RE_FIELD_ARG_BARE):
                raise self.error("expected a valid field argument: a quoted string or a bare string")
            arg = self.last
            if not self.lex_str("]"):
                raise self.error("expected a ']' token")
        return FieldRef(name, arg, pos=pos)

    def parse_transformer_remainder(self, name: str, pos: int) -> Transformer:
        """The rest of `name( ... )` once `name(` is consumed (LHS, RHS and nested transformers)."""
        self.enter()
        self.lex_blank()
        args: list[FieldExpr | StrValue | ListValue]
        if name in SINGLE_ARG_TRANSFORMERS:
            arg_pos = self.idx
            child: FieldExpr | None = None
            if self.lex_str_list(_TRANSFORMER_TOKENS):
                self.lex_blank()
                child = self.parse_transformer_remainder(self.last[:-1], arg_pos)
            if self.lex_rgx(_RE_FIELD_NAME):
                child = self.parse_field_remainder(self.last, arg_pos)
            if child is None:
                raise self.error("expected a field or a nested valid transformer: " + _TRANSFORMERS_MSG)
            args = [child]
        else:
            args = [self.parse_transformer_arg(allow_list=True)]
            self.lex_blank()
            while self.lex_str(","):
                self.lex_blank()
                args.append(self.parse_transformer_arg(allow_list=True))
                self.lex_blank()
        self.lex_blank()
        if not self.lex_str(")"):
            raise self.error("expected a ')' token closing the transformer")
        index: str | None = None
        if self.lex_str("["):
            if not self.lex_quoted_str() and not self.lex_rgx(_RE_FIELD_ARG_BARE):
                raise self.error("expected a valid field argument: a quoted string or a bare string")
            index = self.last
            if not self.lex_str("]"):
                raise self.error("expected a ']' token")
        self.depth -= 1
        return Transformer(name, args, index, pos=pos)

    def parse_transformer_arg(self, allow_list: bool) -> FieldExpr | StrValue | ListValue:
        """An argument of join/concat/getopt: field, transformer, quoted string, number or `(list)`."""
        pos = self.idx
        if self.lex_str_list(_TRANSFORMER_TOKENS):
            self.lex_blank()
            return self.parse_transformer_remainder(self.last[:-1], pos)
        if self.lex_rgx(_RE_FIELD_NAME):
            return self.parse_field_remainder(self.last, pos)
        if self.lex_quoted_str() or self.lex_rgx(_RE_HEX_NUM) or self.lex_rgx(_RE_NUMBER):
            return StrValue(self.last, pos=pos)
        if allow_list and self.lex_str("("):
            self.lex_blank()
            items: list[StrValue | FieldExpr] = []
            item = self.parse_transformer_arg(allow_list=False)
            assert not isinstance(item, ListValue)
            items.append(item)
            self.lex_blank()
            while self.lex_str(","):
                self.lex_blank()
                item = self.parse_transformer_arg(allow_list=False)
                assert not isinstance(item, ListValue)
                items.append(item)
                self.lex_blank()
            if not self.lex_str(")"):
                raise self.error("expected a ')' token")
            return ListValue(items, pos=pos)
        raise self.error("expected a field, a nested transformer, a quoted string, a number or a list")

    def parse_condition(self, left: FieldExpr, pos: int) -> Check:
        self.enter()
        self.lex_blank()
        if self.lex_str_list(UNARY_OPS):
            self.depth -= 1
            return Check(left, self.last, None, None, pos=pos)
        modifier: str | None = None
        value: Value
        self.lex_blank()
        if self.lex_str_list(NUM_OPS):
            op = self.last
            value = self.parse_num_value_or_transformer()
        elif self.lex_str_list(STR_OPS):
            op = self.last
            blank = self.lex_blank()
            if (blank or op.endswith(" ")) and (m := _RE_MODIFIER.match(self.text, self.idx)):
                modifier = m.group(1)
                self.last = modifier
                self.idx += len(modifier)
                value = self.parse_list_value(allow_transformer=False)
            else:
                value = self.parse_str_value_or_transformer(no_transformer=False)
        elif self.lex_str_list(LIST_OPS):
            op = self.last
            value = self.parse_list_value(allow_transformer=True)
        else:
            raise self.error(_OPS_MSG)
        self.depth -= 1
        return Check(left, op.strip(), value, modifier, pos=pos)

    def parse_num_value_or_transformer(self) -> Value:
        self.lex_blank()
        pos = self.idx
        rhs = self.try_parse_transformer_or_val()
        if rhs is not None:
            return rhs
        if self.lex_rgx(_RE_HEX_NUM) or self.lex_rgx(_RE_NUMBER):
            return StrValue(self.last, pos=pos)
        raise self.error("expected a number value or a field with a valid transformer: " + _TRANSFORMERS_MSG)

    def parse_str_value_or_transformer(self, no_transformer: bool) -> Value:
        self.lex_blank()
        pos = self.idx
        if not no_transformer:
            rhs = self.try_parse_transformer_or_val()
            if rhs is not None:
                return rhs
        if self.lex_quoted_str() or self.lex_rgx(_RE_BARE_STR):
            return StrValue(self.last, pos=pos)
        if no_transformer:
            raise self.error("expected a string value")
        raise self.error("expected a string value or a field with a valid transformer: " + _TRANSFORMERS_MSG)

    def parse_list_value(self, allow_transformer: bool) -> Value:
        self.lex_blank()
        pos = self.idx
        if self.lex_str("("):
            items: list[StrValue | FieldExpr] = []
            self.lex_blank()
            try:
                first = self.parse_str_value_or_transformer(no_transformer=True)
            except ConditionSyntaxError:
                first = None  # libsinsp: a failed first item means "empty list", then ')' is required
            if first is not None:
                assert isinstance(first, StrValue)
                items.append(first)
                self.lex_blank()
                while self.lex_str(","):
                    item = self.parse_str_value_or_transformer(no_transformer=True)
                    assert isinstance(item, StrValue)
                    items.append(item)
                    self.lex_blank()
            if not self.lex_str(")"):
                raise self.error("expected a ')' token")
            return ListValue(items, pos=pos)
        if allow_transformer:
            rhs = self.try_parse_transformer_or_val()
            if rhs is not None:
                return rhs
        if self.lex_rgx(_RE_IDENTIFIER):
            return StrValue(self.last, pos=pos)
        raise self.error("expected a list, an identifier, or a field with a valid transformer: "
                         + _TRANSFORMERS_MSG)

    def try_parse_transformer_or_val(self) -> FieldValue | None:
        self.lex_blank()
        pos = self.idx
        if self.lex_str("val("):
            self.lex_blank()
            field_pos = self.idx
            if not self.lex_rgx(_RE_FIELD_NAME):
                raise self.error("expected a field within 'val' transformer")
            ref = self.parse_field_remainder(self.last, field_pos)
            self.lex_blank()
            if not self.lex_str(")"):
                raise self.error("expected a ')' token closing the transformer")
            return FieldValue(ref, pos=pos)
        if self.lex_str_list(_TRANSFORMER_TOKENS):
            self.lex_blank()
            return FieldValue(self.parse_transformer_remainder(self.last[:-1], pos), pos=pos)
        return None

    # -- lexer --------------------------------------------------------------------------------------

    def lex_blank(self) -> bool:
        """Skips blanks; the only lexer step that leaves the last token alone."""
        start = idx = self.idx
        text, size = self.text, self.size
        while idx < size and text[idx] in _BLANKS:
            idx += 1
        self.idx = idx
        return idx != start

    def lex_str(self, token: str) -> bool:
        if self.text.startswith(token, self.idx):
            self.last = token
            self.idx += len(token)
            return True
        return False

    def lex_str_list(self, tokens: tuple[str, ...]) -> bool:
        for token in tokens:
            if self.text.startswith(token, self.idx):
                self.last = token
                self.idx += len(token)
                return True
        return False

    def lex_rgx(self, rgx: re.Pattern[str]) -> bool:
        m = rgx.match(self.text, self.idx)
        if m is None:
            return False
        self.last = m.group()
        self.idx = m.end()
        return True

    def lex_quoted_str(self) -> bool:
        text, start = self.text, self.idx
        if start >= self.size or text[start] not in "'\"":
            return False
        delimiter = text[start]
        self.last = ""
        prev = "\\"
        idx = start
        while idx < self.size:
            c = text[idx]
            if c == delimiter and prev != "\\":
                self.idx = idx + 1
                try:
                    self.last = unescape_str(text[start : idx + 1])
                except ValueError as exc:
                    raise self.error(str(exc)) from None
                return True
            prev = c
            idx += 1
        return False


def parse_condition(text: str, max_depth: int = 1000) -> Node:
    """Parse one condition as Falco does (Falco sets libsinsp's depth limit to 1000)."""
    return _Parser(text, max_depth).parse()
