"""Render the committed SDL as a Markdown API reference (``docs/API_REFERENCE.md``).

Generated from ``api/schema.graphql`` — never edited by hand; ``python -m vouch.api.export`` writes
both files and a test fails when either drifts.
"""

from __future__ import annotations

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    build_schema,
)


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _fields(fields: dict[str, GraphQLField]) -> list[str]:
    lines = ["| field | type | description |", "| --- | --- | --- |"]
    for name, field in fields.items():
        args = ", ".join(f"{a}: {arg.type}" for a, arg in field.args.items())
        signature = f"`{name}({args})`" if args else f"`{name}`"
        lines.append(f"| {signature} | `{field.type}` | {_one_line(field.description)} |")
    return lines


def render(sdl: str) -> str:
    schema: GraphQLSchema = build_schema(sdl)
    out = [
        "# GraphQL API reference",
        "",
        "Generated from `api/schema.graphql` by `python -m vouch.api.export`; do not edit by hand.",
        "Guides: [docs/README.md](README.md).",
        "",
    ]
    for root_name, root in (("Queries", schema.query_type), ("Mutations", schema.mutation_type)):
        if root is None:
            continue
        out += [f"## {root_name}", "", *_fields(root.fields), ""]
    roots = {"Query", "Mutation"}
    named = sorted(
        (t for n, t in schema.type_map.items() if not n.startswith("__") and n not in roots),
        key=lambda t: t.name,
    )
    sections: dict[str, list[str]] = {
        "Object types": [],
        "Input types": [],
        "Enums": [],
        "Interfaces and unions": [],
        "Scalars": [],
    }
    for t in named:
        head = [f"### {t.name}", ""]
        if t.description:
            head += [_one_line(t.description), ""]
        if isinstance(t, GraphQLObjectType):
            sections["Object types"] += [*head, *_fields(t.fields), ""]
        elif isinstance(t, GraphQLInputObjectType):
            rows = ["| field | type | description |", "| --- | --- | --- |"]
            rows += [
                f"| `{n}` | `{f.type}` | {_one_line(f.description)} |" for n, f in t.fields.items()
            ]
            sections["Input types"] += [*head, *rows, ""]
        elif isinstance(t, GraphQLEnumType):
            values = [
                f"- `{n}`" + (f": {_one_line(v.description)}" if v.description else "")
                for n, v in t.values.items()
            ]
            sections["Enums"] += [*head, *values, ""]
        elif isinstance(t, (GraphQLInterfaceType, GraphQLUnionType)):
            if isinstance(t, GraphQLInterfaceType):
                sections["Interfaces and unions"] += [*head, *_fields(t.fields), ""]
            else:
                members = ", ".join(f"`{m.name}`" for m in t.types)
                sections["Interfaces and unions"] += [*head, f"One of {members}.", ""]
        elif isinstance(t, GraphQLScalarType) and t.name not in {
            "String",
            "Int",
            "Float",
            "Boolean",
            "ID",
        }:
            sections["Scalars"] += head
    for title, lines in sections.items():
        if lines:
            out += [f"## {title}", "", *lines]
    return "\n".join(out).rstrip() + "\n"
