"""Registered templates of domestic platforms: which template serves which message kind, and its variables.

Aliyun and Tencent Cloud send only texts registered in advance (签名 + 模板), with variables filled per
message. A county registers one template per message kind and configures them as

    alert=SMS_480000001:sender,area/20,hazard,level,reply_code,token;recall=SMS_480000002:area,reply_code,token

`kind=CODE:variables`, separated by `;`. Variables are the names of `TemplateFields` (the template must use
the same names: `${area}` on Aliyun; on Tencent `{1}`, `{2}` … in the order listed). `/N` caps a variable at N
characters (the platform's per-variable rule; the platform default applies otherwise). `default=…` serves
kinds without a template of their own. Text variables that are too long are shortened with "…" (an area list
still reads as one); values that must be exact (token, reply code, times) make the message fail instead, so a
broken link or a wrong code is never sent.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from channels.base import ChannelConfigError, Message, SendResult, TemplateFields

FIELD_NAMES = frozenset(f.name for f in fields(TemplateFields))
EXACT = frozenset({"token", "reply_code", "deadline", "sent_at"})
ELLIPSIS = "…"


class TemplateError(ValueError):
    """A message cannot be expressed in the registered template."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Variable:
    name: str
    max_len: int  # 0: no limit


@dataclass(frozen=True)
class Template:
    code: str
    variables: tuple[Variable, ...]

    def values(self, fields_: TemplateFields) -> list[tuple[str, str]]:
        """(variable, value) in template order, each within its length rule; raises TemplateError."""
        out = []
        for v in self.variables:
            value = fields_.get(v.name).strip()
            if not value:
                # Platforms refuse empty variables (and a template that needs a link with no link is wrong).
                raise TemplateError("template_param_empty", f"template {self.code}: {v.name} is empty")
            if v.max_len and len(value) > v.max_len:
                if v.name in EXACT:
                    raise TemplateError("template_param_too_long",
                                        f"template {self.code}: {v.name} has {len(value)} characters, "
                                        f"the platform allows {v.max_len}")
                value = value[: v.max_len - 1] + ELLIPSIS
            out.append((v.name, value))
        return out


@dataclass(frozen=True)
class TemplateSet:
    templates: dict[str, Template]

    @classmethod
    def parse(cls, raw: str, *, setting: str, default_max: int) -> TemplateSet:
        """Read the setting (see the module docstring); errors name the setting and the part."""
        templates: dict[str, Template] = {}
        for part in filter(None, (p.strip() for p in raw.split(";"))):
            kind, sep, rest = part.partition("=")
            code, sep2, names = rest.partition(":")
            if not sep or not sep2 or not kind.strip() or not code.strip():
                raise ChannelConfigError(f"{setting}: {part!r} is not of the form kind=CODE:var1,var2")
            variables = []
            for item in filter(None, (n.strip() for n in names.split(","))):
                name, slash, cap = item.partition("/")
                if name not in FIELD_NAMES:
                    known = ", ".join(sorted(FIELD_NAMES))
                    raise ChannelConfigError(f"{setting}: {kind.strip()}: unknown variable {name!r} (known: {known})")
                if slash and not cap.isdigit():
                    raise ChannelConfigError(f"{setting}: {kind.strip()}: {item!r}: the cap must be a number")
                variables.append(Variable(name, int(cap) if slash else default_max))
            templates[kind.strip()] = Template(code.strip(), tuple(variables))
        return cls(templates)

    def capped_below(self, name: str, length: int) -> list[str]:
        """Kinds whose `name` variable is capped below `length`: an exact value that long could never be sent."""
        return [kind for kind, t in sorted(self.templates.items())
                if any(v.name == name and 0 < v.max_len < length for v in t.variables)]

    def __bool__(self) -> bool:
        return bool(self.templates)

    def for_message(self, message: Message) -> Template:
        kind = message.metadata.get("kind", "alert")
        template = self.templates.get(kind) or self.templates.get("default")
        if template is None:
            raise TemplateError("no_template", f"no registered template for message kind {kind!r}")
        if message.template is None and template.variables:
            raise TemplateError("no_template_fields", "the message carries no template fields")
        return template

    def fill(self, message: Message) -> tuple[Template, list[tuple[str, str]]]:
        template = self.for_message(message)
        return template, template.values(message.template or TemplateFields())


def mainland_number(address: str) -> str | None:
    """'+8613800000000' → '13800000000'; None for numbers outside the mainland (domestic SMS cannot reach them)."""
    a = address.strip()
    if a.startswith("+86"):
        return a[3:]
    if a.startswith("86") and len(a) == 13:
        return a[2:]
    if a.isdigit() and len(a) == 11 and a.startswith("1"):
        return a
    return None


@dataclass(frozen=True)
class Addressed:
    """A message a domestic template platform can take: the bare mainland number and the filled template."""

    number: str
    template: Template
    values: list[tuple[str, str]]


def address_for_platform(message: Message, *, channel: str, name: str, templates: TemplateSet
                         ) -> Addressed | SendResult:
    """The checks every domestic template platform makes before its call, as results: another channel is refused,
    and a number outside the mainland or a message no registered template expresses is `refused()` — certainly not
    sent — so a provider further down the failover chain may still take it."""
    if message.channel != channel:
        return SendResult.permanent("unsupported_channel", f"{name} cannot send {message.channel}")
    number = mainland_number(message.address)
    if number is None:
        return SendResult.permanent("not_mainland", f"{message.address} is not a mainland number").refused()
    try:
        template, values = templates.fill(message)
    except TemplateError as exc:
        return SendResult.permanent(exc.code, str(exc)).refused()
    return Addressed(number, template, values)
