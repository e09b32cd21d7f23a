"""Falco's rule-loading report: error/warning codes, context chains and the text and JSON forms.

Mirrors falco_load_result.cpp and rule_loader.cpp so that rule authors see the same codes, messages,
positions (0-based YAML line:column, like yaml-cpp marks) and snippets as with `falco -V`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class ErrorCode(Enum):
    """value = (short description, long description), in Falco's enum order."""

    LOAD_ERR_FILE_READ = (
        "File read error",
        "This occurs when falco can not read a given file. Check permissions and whether the file exists.",
    )
    LOAD_ERR_YAML_PARSE = ("YAML parse error", "This occurs when the rules content is not valid YAML.")
    LOAD_ERR_YAML_VALIDATE = (
        "Error validating internal structure of YAML file",
        "This occurs when the internal structure of the YAML file is incorrect. Examples include not "
        "consisting of a sequence of maps, a given rule/macro/list item not having required keys, values "
        "not having the right type (e.g. the items property of a list not being a sequence), etc.",
    )
    LOAD_ERR_COMPILE_CONDITION = (
        "Error compiling condition",
        "This occurs when a condition string can not be compiled to a filter object.",
    )
    LOAD_ERR_COMPILE_OUTPUT = (
        "Error compiling output",
        "This occurs when an output string can not be compiled to an output object.",
    )
    LOAD_ERR_VALIDATE = (
        "Error validating rule/macro/list/exception objects",
        "This occurs when a rule/macro/list item is incorrect. Examples include a condition field "
        "referring to an undefined macro, falco engine/plugin version mismatches, items with append "
        "without any existing item, exception fields/comps having different lengths, etc.",
    )
    LOAD_ERR_EXTENSION = ("Error in extension item", "This occurs when there is an error in an extension item")

    @property
    def title(self) -> str:
        return self.value[0]

    @property
    def description(self) -> str:
        # Falco's error_desc() returns the short string (a quirk kept for identical JSON reports).
        return self.value[0]


class WarningCode(Enum):
    """value = (short description, long description), in Falco's enum order."""

    LOAD_UNKNOWN_SOURCE = (
        "Unknown event source",
        "A rule has a unknown event source. This can occur when reading rules content without having a "
        "corresponding plugin loaded, etc. The rule will be silently ignored.",
    )
    LOAD_UNSAFE_NA_CHECK = (
        "Unsafe <NA> comparison in condition",
        "Comparing a field value with <NA> is unsafe and can lead to unpredictable behavior of the rule "
        "condition. If you need to check for the existence of a field, consider using the 'exists' "
        "operator instead.",
    )
    LOAD_NO_EVTTYPE = (
        "Condition has no event-type restriction",
        "A rule condition matches too many evt.type values. This has a significant performance penalty. "
        "Make the condition more specific by adding an evt.type field or further restricting the number "
        "of evt.type values in the condition.",
    )
    LOAD_UNKNOWN_FILTER = (
        "Unknown field or event-type in condition or output",
        "A rule condition or output refers to a field or evt.type that does not exist. This is normally "
        "an error, but if a rule has a skip-if-unknown-filter property, the error is downgraded to a "
        "warning.",
    )
    LOAD_UNUSED_MACRO = (
        "Unused macro",
        "A macro is defined in the rules content but is not used by any other macro or rule.",
    )
    LOAD_UNUSED_LIST = (
        "Unused list",
        "A list is defined in the rules content but is not used by any other list, macro, or rule.",
    )
    LOAD_UNKNOWN_ITEM = (
        "Unknown rules file item",
        "An unknown top-level object is in the rules content. It will be ignored.",
    )
    LOAD_DEPRECATED_ITEM = (
        "Used deprecated item",
        "A deprecated item is employed by lists, macros, or rules.",
    )
    LOAD_WARNING_EXTENSION = ("Warning in extension item", "An extension item has a warning")
    LOAD_APPEND_NO_VALUES = (
        "Overriding/appending with no values",
        "A rule exception is overriding/appending with no values",
    )
    LOAD_EXCEPTION_NAME_NOT_UNIQUE = (
        "Multiple exceptions defined with the same name",
        "A rule is defining multiple exceptions with the same name",
    )
    LOAD_INVALID_MACRO_NAME = ("Invalid macro name", "A macro is defined with an invalid name")
    LOAD_INVALID_LIST_NAME = ("Invalid list name", "A list is defined with an invalid name")
    LOAD_COMPILE_CONDITION = (
        "Warning in rule condition",
        "A rule condition or output have been parsed with a warning",
    )
    LOAD_UNKNOWN_KEY = (
        "Unknown key in item definition",
        "An item in the rules content contains an unrecognized key. The key will be ignored. This may "
        "indicate a typo or a property placed on the wrong item type.",
    )

    @property
    def title(self) -> str:
        return self.value[0]

    @property
    def description(self) -> str:
        return self.value[1]


@dataclass(frozen=True, slots=True)
class Location:
    """One link of a context chain: what item, where (0-based line/column as yaml-cpp marks)."""

    item_type: str
    item_name: str
    name: str
    line: int = 0
    column: int = 0
    offset: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "item_name": self.item_name,
            "item_type": self.item_type,
            "position": {"column": self.column, "line": self.line, "name": self.name, "offset": self.offset},
        }


@dataclass(frozen=True, slots=True)
class Context:
    """The chain "rules content > rule 'x' > rule condition > ..." Falco prints before each message.

    `alt_content` is set when the last location points into a condition string rather than the file;
    `alt_offset` is then the offset inside that string used for the snippet marker.
    """

    locations: tuple[Location, ...]
    alt_content: str | None = None
    alt_offset: int = 0

    @staticmethod
    def root(name: str) -> Context:
        return Context((Location("rules content", "", name),))

    @property
    def name(self) -> str:
        return self.locations[0].name

    def child(self, item_type: str, item_name: str, line: int, column: int, offset: int) -> Context:
        loc = Location(item_type, item_name, self.name, line, column, offset)
        return Context(self.locations + (loc,))

    def condition(self, condition: str, index: int, line: int, column: int) -> Context:
        """A location inside a condition string (libs positions: 1-based line/column, added to the parent's)."""
        short = '"' + (condition[:17] + '..."' if len(condition) > 20 else condition + '"')
        short = short.replace("\n", " ").replace("\r", " ")
        last = self.locations[-1]
        loc = Location(
            "condition expression", "", short, last.line + line, last.column + column, last.offset + index
        )
        return Context(self.locations + (loc,), alt_content=condition, alt_offset=index)

    def as_text(self) -> str:
        out = []
        for i, loc in enumerate(self.locations):
            label = loc.item_type + (f" '{loc.item_name}'" if loc.item_name else "")
            out.append(f"{'In ' if i == 0 else '    '}{label}: ({loc.name}:{loc.line}:{loc.column})\n")
        return "".join(out)

    def snippet(self, contents: dict[str, str], width: int = 160) -> str:
        """The source line around the position with a '^' under it (rule_loader::context::snippet)."""
        last = self.locations[-1]
        if self.alt_content is not None:
            content, pos = self.alt_content, self.alt_offset
        elif last.name in contents:
            content, pos = contents[last.name], last.offset
        else:
            return f"<No context for file + {last.name}>\n"
        if not content:
            return "<No context available>\n"
        while pos > 0 and (pos >= len(content) or content[pos] == "\n"):
            pos -= 1
        half = width // 2
        start = pos
        while start > 0 and content[start] != "\n" and pos - start < half:
            start -= 1
        end = pos
        while end < len(content) - 1 and content[end] != "\n" and end - pos < half:
            end += 1
        if start < len(content) and content[start] == "\n":
            start += 1
        if end < len(content) and content[end] == "\n":
            end -= 1
        text = content[start : end + 1]
        if not text:
            return "<No context available>\n"
        if pos - start >= half:
            text = "..." + text[3:]
        if end - pos >= half:
            text = text[:-3] + "..."
        out = text + "\n"
        if pos - start <= len(out) - 1:
            out += " " * (pos - start) + "^\n"
        return out


@dataclass(frozen=True, slots=True)
class LoadMessage:
    """An error or a warning; `detail` refines the code's title (Falco: "Used deprecated item: field 'x'")."""

    code: ErrorCode | WarningCode
    message: str
    context: Context
    detail: str = ""

    @property
    def title(self) -> str:
        return self.code.title + (f": {self.detail}" if self.detail else "")

    def as_text(self, contents: dict[str, str]) -> str:
        return (
            self.context.as_text()
            + "------\n"
            + self.context.snippet(contents)
            + "------\n"
            + f"{self.code.name} ({self.title}): {self.message}\n"
        )

    def as_json(self, contents: dict[str, str]) -> dict[str, Any]:
        ctx: dict[str, Any] = {"locations": [loc.as_json() for loc in self.context.locations]}
        ctx["snippet"] = self.context.snippet(contents)
        return {
            "code": self.code.name,
            "codedesc": self.code.description,
            "context": ctx,
            "message": self.message,
        }


class RuleLoadError(Exception):
    """Raised inside the loader stages; the first one stops the file (Falco's rule_load_exception)."""

    def __init__(self, code: ErrorCode, message: str, context: Context) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.context = context


@dataclass
class FileResult:
    """The load result of one rules file (Falco's rule_loader::result)."""

    name: str
    content: str = ""
    errors: list[LoadMessage] = field(default_factory=list)
    warnings: list[LoadMessage] = field(default_factory=list)
    schema_warnings: list[str] = field(default_factory=list)
    """Falco's rule-schema check per YAML document: "ok" or "failed for <context>: ..." lines; empty when
    the check did not run (content that is not YAML)."""

    @property
    def successful(self) -> bool:
        return not self.errors

    @property
    def schema_validation(self) -> str:
        """`ok`, `none` (not checked) or the first `failed for ...` line, as Falco logs it."""
        failed = [w for w in self.schema_warnings if w != "ok"]
        if failed:
            return failed[0]
        return "ok" if self.schema_warnings else "none"

    @property
    def schema_valid(self) -> bool:
        return self.schema_validation == "ok"

    def schema_line(self) -> str:
        """Falco's `<file> | schema validation: <status>` log line."""
        return f"   {self.name} | schema validation: {self.schema_validation}"

    @property
    def has_warnings(self) -> bool:
        return bool(self.warnings)

    def add_error(self, code: ErrorCode, message: str, context: Context) -> None:
        self.errors.append(LoadMessage(code, message, context))

    def add_warning(self, code: WarningCode, message: str, context: Context, detail: str = "") -> None:
        self.warnings.append(LoadMessage(code, message, context, detail))

    def status(self) -> str:
        if not self.successful:
            return "Invalid"
        return "Ok, with warnings" if self.warnings else "Ok"

    def as_summary(self) -> str:
        """One line per kind, like Falco's as_summary_string."""
        out = f"{self.name}: {self.status()}" if self.name else self.status()
        if self.errors:
            codes = " ".join(f"{e.code.name} ({e.title})" for e in self.errors)
            out += f"\n {len(self.errors)} errors: [{codes}]"
        if self.warnings:
            codes = " ".join(f"{w.code.name} ({w.title})" for w in self.warnings)
            out += f"\n {len(self.warnings)} warnings: [{codes}]"
        return out

    def as_text(self, contents: dict[str, str] | None = None) -> str:
        """Falco's verbose report: status line, then every error and warning with context and snippet."""
        contents = contents if contents is not None else {self.name: self.content}
        out = f"{self.name}: {self.status()}" if self.name else self.status()
        if self.errors:
            out += f"\n{len(self.errors)} Errors:\n" + "".join(e.as_text(contents) for e in self.errors)
        if self.warnings:
            out += f"\n{len(self.warnings)} Warnings:\n" + "".join(w.as_text(contents) for w in self.warnings)
        if self.schema_warnings and not self.schema_valid:
            # Falco logs this line at WARNING level when the check fails (at INFO when it passes)
            out += ("" if out.endswith("\n") else "\n") + self.schema_line() + "\n"
        return out

    def as_json(self, contents: dict[str, str] | None = None) -> dict[str, Any]:
        contents = contents if contents is not None else {self.name: self.content}
        doc: dict[str, Any] = {
            "errors": [e.as_json(contents) for e in self.errors],
            "name": self.name,
            "successful": self.successful,
            "warnings": [w.as_json(contents) for w in self.warnings],
        }
        if self.schema_warnings:
            doc["schema_valid"] = self.schema_valid
            doc["schema_warnings"] = [w for w in self.schema_warnings if w != "ok"]
        return doc


@dataclass
class LoadResult:
    """Results of loading several files into one engine, in load order; loading stops at the first invalid file."""

    files: list[FileResult] = field(default_factory=list)
    rules: int = 0
    macros: int = 0
    lists: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def successful(self) -> bool:
        return all(f.successful for f in self.files)

    @property
    def has_warnings(self) -> bool:
        return any(f.warnings for f in self.files)

    @property
    def errors(self) -> list[LoadMessage]:
        return [e for f in self.files for e in f.errors]

    @property
    def warnings(self) -> list[LoadMessage]:
        return [w for f in self.files for w in f.warnings]

    def contents(self) -> dict[str, str]:
        return {f.name: f.content for f in self.files}

    def __str__(self) -> str:
        return self.as_text()

    def as_text(self) -> str:
        contents = self.contents()
        return "\n".join(f.as_text(contents) for f in self.files)

    def as_json(self) -> dict[str, Any]:
        contents = self.contents()
        return {"falco_load_results": [f.as_json(contents) for f in self.files]}
