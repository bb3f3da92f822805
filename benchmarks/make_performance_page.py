"""Write ``docs/performance.md`` from the benchmark results in ``benchmarks/results/*.json``.

Every benchmark script in ``benchmarks/`` writes one JSON file there; this script turns each file into one section
of the page: its title (the ``benchmark`` field, else the file name), where and with what it ran (``machine``,
``device``, ``versions`` / ``env``, and the date and commit when the file holds them), its targets and whether they
were met (``checks``, and every object with a ``pass`` or ``target*`` field), its measured values as Markdown
tables, its settings and its notes. The prose that cannot be derived from the files (methodology, decisions, what
was tried and dropped) is hand-written in ``docs/performance-notes.md``, which the page links to.

The output depends only on the files' names (sorted) and contents, so it is reproducible byte for byte; the tests
check that the committed page is what this script makes of the committed results.

Usage::

    python benchmarks/make_performance_page.py [--results benchmarks/results] [--out docs/performance.md]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"
DEFAULT_RESULTS = BENCHMARKS / "results"
DEFAULT_OUT = REPO / "docs" / "performance.md"
NOTES = "performance-notes.md"  # the hand-written companion, next to the page

# Top-level keys that say where and with what a benchmark ran, rather than what it measured.
PROVENANCE = ("machine", "device", "versions", "env")
DATE_KEYS = ("date", "timestamp", "created", "started", "finished")
COMMIT_KEYS = ("commit", "git_commit", "git_sha", "git_rev", "revision")
# Top-level keys that describe how a benchmark was set up: listed under "Settings", after the results.
SETTINGS = (
    "quick", "config", "settings", "sizes", "fields", "overrides", "fresh_store", "n_jobs", "cpu_count",
    "n_permutations", "repeat", "flop_formula", "fit", "model", "source", "seed_sweep", "threshold", "shapes",
)  # fmt: skip
SHOWN_APART = ("benchmark", "notes", "figure", "checks")
MAX_LIST = 10  # longer lists of numbers are shown as their count, minimum and maximum


# ------------------------------------------------------------------------------------------------ formatting
class Raw(str):
    """A cell that is already Markdown: :func:`table` takes it as it is."""


EMPTY = Raw("")  # the cell of a field that a row does not have


def fmt(value: Any) -> str:
    """One value as Markdown text: integers with thousands separators, other floats to 4 significant digits,
    booleans yes / no, ``None`` as a dash, a list as its items joined by `` / `` (more than ``MAX_LIST`` numbers
    as their count, minimum and maximum)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        if 1e4 <= abs(value) < 1e15:
            return f"{value:,.1f}"
        return f"{value:.4g}"
    if isinstance(value, list):
        if not value:
            return "[]"
        if len(value) > MAX_LIST and all(_is_number(v) for v in value):
            return f"{len(value)} values, {fmt(min(value))} … {fmt(max(value))}"
        return " / ".join(_escape(json.dumps(v)) if isinstance(v, list) else fmt(v) for v in value)
    return _escape(str(value)) if value != "" else '""'


def _escape(text: str) -> str:
    """Text safe in a Markdown table cell: no column break, no emphasis from ``*``, one line."""
    return text.replace("|", "\\|").replace("*", "\\*").replace("\n", " ")


def _cell(column: str, value: Any) -> Any:
    """A failed ``pass`` / ``met`` stands out (bold), ``met`` of a list of rows is ``yes / no (m of n rows)``; any
    other value is left to :func:`fmt`."""
    if column.rsplit(".", 1)[-1] not in ("pass", "met"):
        return value
    if isinstance(value, tuple):
        met, n = value
        return Raw(f"{'yes' if met == n else '**no**'} ({met} of {n} rows)")
    return Raw("**no**") if value is False else value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _is_flat(value: Any) -> bool:
    """A scalar, or a list of scalars / of lists of scalars: fits in one cell."""
    if _is_scalar(value):
        return True
    return isinstance(value, list) and all(
        _is_scalar(v) or (isinstance(v, list) and all(_is_scalar(w) for w in v)) for v in value
    )


def _is_records(value: Any) -> bool:
    """A non-empty list of objects whose fields all fit in a cell: a table with one row per object."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and all(_is_flat(w) for w in v.values()) for v in value)
    )


def _is_keyed(value: Any) -> bool:
    """An object of at least two non-empty objects whose fields all fit in a cell: a table with one row per key."""
    return (
        isinstance(value, dict)
        and len(value) >= 2
        and all(isinstance(v, dict) and v and all(_is_flat(w) for w in v.values()) for v in value.values())
    )


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table of values (:class:`Raw` cells as they are, others through :func:`fmt`); a column other
    than the first whose values are all numbers is right-aligned."""
    cells = [[_cell(header[j], c) for j, c in enumerate(row)] for row in rows]
    cells = [[c if isinstance(c, Raw) else fmt(c) for c in row] for row in cells]
    align = []
    for j in range(len(header)):
        column = [row[j] for row in rows if not isinstance(row[j], Raw) and row[j] is not None]
        numeric = j > 0 and bool(column) and all(_is_number(c) for c in column)
        align.append("---:" if numeric else "---")
    lines = ["| " + " | ".join(_escape(h) for h in header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def _columns(objects: list[dict]) -> list[str]:
    """The union of the objects' fields, in the order they first appear."""
    columns: list[str] = []
    for obj in objects:
        columns += [k for k in obj if k not in columns]
    return columns


def records_table(records: list[dict]) -> str:
    columns = _columns(records)
    return table(columns, [[r.get(c, EMPTY) for c in columns] for r in records])


def keyed_table(obj: dict) -> str:
    columns = _columns(list(obj.values()))
    return table(["", *columns], [[key, *(v.get(c, EMPTY) for c in columns)] for key, v in obj.items()])


# ---------------------------------------------------------------------------------------------- the content
def collect(obj: dict, prefix: str, values: list, tables: list) -> None:
    """Flatten ``obj``: cell-sized leaves into ``values`` as ``(dotted path, value)``; lists of objects and
    objects of objects into ``tables`` as ``(dotted path, Markdown table)``."""
    for key, value in obj.items():
        path = f"{prefix}{key}"
        if _is_flat(value):
            values.append((path, value))
        elif _is_records(value):
            tables.append((path, records_table(value)))
        elif _is_keyed(value):
            tables.append((path, keyed_table(value)))
        elif isinstance(value, dict):
            collect(value, f"{path}.", values, tables)
        else:  # a list holding objects and other things: one entry per item
            collect({f"[{i}]": v for i, v in enumerate(value)}, path, values, tables)


def targets(data: dict) -> list[list[Any]]:
    """``[check, value, target, met]`` rows: the entries of the ``checks`` object, every object with a ``pass``
    or ``target*`` field, and every list of objects with a ``pass`` field. ``met`` is a boolean, ``(m, n)`` for
    ``m`` of a list's ``n`` rows passed, or ``Raw("not recorded")``."""
    rows: list[list[Any]] = []
    checks = data.get("checks")
    if isinstance(checks, dict):
        for name, check in checks.items():
            if isinstance(check, dict):
                rows.append(
                    [name, check.get("value", EMPTY), check.get("target", EMPTY), check.get("pass", EMPTY)]
                )
            else:
                rows.append([name, EMPTY, EMPTY, check])

    def walk(obj: Any, path: str) -> None:
        if isinstance(obj, dict):
            target_keys = [k for k in obj if (k == "target" or k.startswith("target_")) and _is_scalar(obj[k])]
            if target_keys or isinstance(obj.get("pass"), bool):
                rows.append(_target_row(obj, path, target_keys))
            for key, value in obj.items():
                if path or key != "checks":
                    walk(value, f"{path}.{key}" if path else key)
        elif isinstance(obj, list):
            if obj and all(isinstance(v, dict) and isinstance(v.get("pass"), bool) for v in obj):
                rows.append(
                    [
                        f"{path}[*]",
                        EMPTY,
                        Raw("each row's own (see its table)"),
                        (sum(v["pass"] for v in obj), len(obj)),
                    ]
                )
                return
            for i, value in enumerate(obj):
                walk(value, f"{path}[{i}]")

    walk(data, "")
    return rows


def _target_row(obj: dict, path: str, target_keys: list[str]) -> list[Any]:
    """The measured value is the one other number field whose name ends like the target's (``target_s`` →
    ``total_s``, ``target_speedup`` → ``jax_speedup``); empty when there is not exactly one such field."""
    value_key = None
    if len(target_keys) == 1 and target_keys[0] != "target":
        suffix = target_keys[0][len("target") :]  # "_s", "_speedup", ...
        matches = [k for k, v in obj.items() if k != target_keys[0] and _is_number(v) and k.endswith(suffix)]
        matches += [k for k, v in obj.items() if k == suffix[1:] and _is_number(v)]
        value_key = matches[0] if len(matches) == 1 else None
    name = ".".join(p for p in (path, value_key) if p) or ", ".join(target_keys)
    target = ", ".join(f"{k} = {fmt(obj[k])}" for k in target_keys) or EMPTY
    passed = obj.get("pass")
    met = passed if isinstance(passed, bool) else Raw("not recorded")
    return [name, obj[value_key] if value_key else EMPTY, target, met]


def met_summary(rows: list[list[Any]]) -> str:
    """``m of n met`` over the targets with a verdict, ``m of n rows met`` over lists of rows with one each, and
    how many targets have none."""
    met = [r[3] for r in rows if isinstance(r[3], bool)]
    lists = [r[3] for r in rows if isinstance(r[3], tuple)]
    parts = [f"{sum(met)} of {len(met)} met"] if met else []
    if lists:
        parts.append(f"{sum(m for m, _ in lists)} of {sum(n for _, n in lists)} rows met")
    if len(rows) > len(met) + len(lists):
        parts.append(f"{len(rows) - len(met) - len(lists)} without a recorded verdict")
    return ", ".join(parts) if parts else "no target recorded"


def _found(data: dict, keys: tuple[str, ...]) -> list[str]:
    """The values of ``keys`` at the top level or in ``machine`` / ``env``."""
    found = []
    for where in (data, data.get("machine"), data.get("env")):
        if isinstance(where, dict):
            found += [fmt(where[k]) for k in keys if k in where and _is_scalar(where[k])]
    return found


def _inline(obj: Any) -> str:
    if isinstance(obj, dict):
        return "; ".join(f"{k} {fmt(v) if _is_flat(v) else _escape(json.dumps(v))}" for k, v in obj.items())
    return fmt(obj)


def _display(path: Path) -> str:
    """``path`` relative to the repository when inside it (so the page does not depend on where the checkout
    is), else as given."""
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return path.as_posix()


def _name(path: Path, data: dict) -> str:
    return data["benchmark"] if isinstance(data.get("benchmark"), str) else path.stem


def _title(path: Path, data: dict) -> str:
    name = _name(path, data)
    return name if name == path.stem else f"{name} ({path.stem})"


def section(path: Path, data: dict) -> str:
    """One result file as a ``##`` section."""
    name = _name(path, data)
    out = [f"## {_title(path, data)}", ""]
    script = BENCHMARKS / f"{name}.py"
    source = f"From `{_display(path)}`"
    if script.exists():
        source += f", written by `{_display(script)}`"
    out += [source + ".", ""]

    facts = [f"- **{key}**: {_inline(data[key])}" for key in PROVENANCE if key in data]
    for what, keys in (("date", DATE_KEYS), ("commit", COMMIT_KEYS)):
        found = _found(data, keys)
        facts.append(f"- **{what}**: {', '.join(found) if found else 'not recorded in the file'}")
    out += [*facts, ""]

    rows = targets(data)
    out += ["### Targets", "", met_summary(rows).capitalize() + ".", ""]
    if rows:
        out += [table(["check", "value", "target", "met"], rows), ""]

    apart = set(PROVENANCE) | set(DATE_KEYS) | set(COMMIT_KEYS) | set(SHOWN_APART)
    measured = {k: v for k, v in data.items() if k not in apart and k not in SETTINGS}
    settings = {k: v for k, v in data.items() if k not in apart and k in SETTINGS}
    for heading, obj in (("Results", measured), ("Settings", settings)):
        values: list = []
        tables: list = []
        collect(obj, "", values, tables)
        if not values and not tables:
            continue
        out += [f"### {heading}", ""]
        if values:
            out += [table(["quantity", "value"], [[k, v] for k, v in values]), ""]
        for sub, text in tables:
            out += [f"`{sub}`:", "", text, ""]

    figure = data.get("figure")
    if isinstance(figure, str) and "/docs/" in figure:  # a figure of the docs: shown, relative to docs/
        out += [f"![{name}]({figure[figure.rindex('/docs/') + len('/docs/') :]})", ""]
    notes = data.get("notes")
    if isinstance(notes, list) and notes:
        out += ["### Notes (from the file)", "", *(f"- {fmt(n)}" for n in notes), ""]
    return "\n".join(out)


def render(results: Path) -> str:
    """The whole page for the ``*.json`` files in ``results``."""
    loaded = [(p, json.loads(p.read_text(encoding="utf-8"))) for p in sorted(results.glob("*.json"))]
    head = [
        "# Measured performance",
        "",
        "<!-- Generated by benchmarks/make_performance_page.py: do not edit by hand. -->",
        "",
        "This page is generated by `benchmarks/make_performance_page.py` from the result files "
        f"`{_display(results)}/*.json` that the benchmark scripts in `benchmarks/` write (one section per file, "
        "in file-name order). Do not edit it by hand: rerun a benchmark, then regenerate the page with",
        "",
        "    python benchmarks/make_performance_page.py",
        "",
        f"How the measurements were made, what they mean, and what was tried and dropped: [{NOTES}]({NOTES}) "
        "(hand-written).",
        "",
        "Each section: where the file says the benchmark ran, its targets and whether they were met, its measured "
        "values (nested fields as dotted names, lists of records as tables), its settings and its notes. Numbers: "
        "integers with thousands separators, other values to 4 significant digits, a list as its items joined by "
        f"` / ` (more than {MAX_LIST} numbers as their count, minimum and maximum), `—` for null.",
        "",
    ]
    if loaded:
        summary = [[Raw(f"`{_display(p)}`"), _title(p, d), met_summary(targets(d))] for p, d in loaded]
        head += [table(["result file", "benchmark", "targets"], summary), ""]
    else:
        head += ["No result files.", ""]
    return "\n".join(head + [section(p, d) for p, d in loaded]).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="folder of benchmark JSON files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the Markdown page to write")
    args = parser.parse_args(argv)
    text = render(args.results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {_display(args.out)}")


if __name__ == "__main__":
    main()
