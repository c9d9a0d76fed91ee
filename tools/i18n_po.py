"""Update this addon's .po files from its template and check them: plain Python, no polib.

    python tools/i18n_po.py merge POT PO... [--odoo ODOO_DIR]
    python tools/i18n_po.py check POT PO... [--template COMMITTED_POT] [--summary FILE]
    python tools/i18n_po.py same POT_A POT_B

merge rewrites each PO in the order and with the comments of POT (the template that Odoo's export
wrote): a translation is kept when its msgid is still in the template; a new msgid is untranslated,
or fuzzy with the translation of a msgid that left the template and reads almost the same (the old
msgid as "#| msgid", as msgmerge --previous does); msgids that left the template are dropped. A PO
that does not exist is made, its Language from its file name and its Plural-Forms from Odoo's own
base/i18n/<lang>.po. ALIASES name the files that are copies of another: Odoo reads es.po for es_ES
only, and es_419.po for every Latin American Spanish, so es_419.po is es.po under another header.

check fails, listing them, when a msgid of POT is missing from a PO, untranslated or fuzzy there,
when a PO holds a msgid POT lacks, when a translation's placeholders (%(name)s, %s, {name}) or
inline markup (<b>, <span class="...">) differ from its msgid's, when an alias is not the copy of
its source, and, with --template, when the committed template differs from POT: Odoo loads a
translation only if its msgid is in the committed template. It prints one line per PO, e.g.
"fr: 547 strings, all translated", then a count line as the test suites print theirs,
"i18n suite: 5 passed, 0 failed, 0 skipped": one test per PO (an alias passes when it is the copy
of its source) and one for the committed template; --summary FILE appends that row to .ci/run's
summary (tools/test_counts.py).

same exits 0 when two templates hold the same entries (their creation dates aside): the export then
leaves the committed template as it is.
"""

import difflib
import os
import re
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass, field

from test_counts import write_summary_row

# A copy of the translation of another language, under its own header (see the module docstring).
ALIASES = {"es_419": "es"}
# How close a msgid that left the template must be to a new one for its translation to be offered.
FUZZY_RATIO = 0.8
WRAP = 78
PLACEHOLDER = re.compile(
    r"%(?:\([^)]*\))?[#0+-]?\d*(?:\.\d+)?[sdifrx%]"  # printf style: %s, %d, %(name)s, %%
    r"|\{[A-Za-z_]\w*(?:\.\w+)*(?:![rsa])?(?::[^{}]*)?\}|\{\}"  # str.format: {name}, {0!r}, {}
    r"|<[^<>]+>"  # inline markup of view terms, which a translation must keep
)
DATE_LINE = re.compile(r'^"(POT-Creation-Date|PO-Revision-Date): .*\\n"$', re.M)


@dataclass
class Entry:
    msgid: str
    msgstr: str = ""
    comments: list = field(default_factory=list)  # raw "#." "#:" "# " lines
    flags: list = field(default_factory=list)
    previous: str = ""  # the msgid a fuzzy translation was made for
    msgid_lines: list = field(default_factory=list)  # as the template writes them

    @property
    def fuzzy(self):
        return "fuzzy" in self.flags


# Reading and writing ---------------------------------------------------------------------------

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def unquote(line):
    body = line.strip()[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), body)


def quote(text):
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r") + '"'


def parse(text):
    """The entries of a PO text, the header (msgid "") first; obsolete "#~" entries are skipped."""
    entries = []
    for block in re.split(r"\n\s*\n", text.strip("\n")):
        lines = [line for line in block.splitlines() if line.strip()]
        if not lines or all(line.startswith("#~") for line in lines):
            continue
        entry = Entry(msgid="")
        keyword = None
        values = {"msgid": [], "msgstr": [], "msgctxt": [], "previous": []}
        for line in lines:
            if line.startswith("#,"):
                entry.flags += [flag.strip() for flag in line[2:].split(",") if flag.strip()]
            elif line.startswith("#| msgid"):
                keyword = "previous"
                values[keyword].append(unquote(line[len("#| msgid") :]))
            elif line.startswith('#| "'):
                values["previous"].append(unquote(line[2:]))
            elif line.startswith("#"):
                entry.comments.append(line)
            elif line.startswith('"'):
                values[keyword].append(unquote(line))
                if keyword == "msgid":
                    entry.msgid_lines.append(line)
            else:
                keyword, _sep, rest = line.partition(" ")
                if keyword not in ("msgid", "msgstr", "msgctxt"):
                    raise ValueError(f"cannot read this PO line: {line!r}")
                values[keyword].append(unquote(rest))
                if keyword == "msgid":
                    entry.msgid_lines.append(line)
        if values["msgctxt"]:
            raise ValueError(f"msgctxt is not used by Odoo: {block[:80]!r}")
        entry.msgid = "".join(values["msgid"])
        entry.msgstr = "".join(values["msgstr"])
        entry.previous = "".join(values["previous"])
        entries.append(entry)
    if not entries or entries[0].msgid:
        raise ValueError('no header (msgid "") at the top')
    return entries


def format_string(keyword, text, prefix=""):
    """KEYWORD "TEXT" in lines, as Odoo's export writes them: split after each newline, long lines
    wrapped at spaces."""
    if len(text.splitlines(True)) > 1:
        chunks = [""] + text.splitlines(True)
    elif len(quote(text)) + len(keyword) + 1 > WRAP:
        chunks = [""] + textwrap.wrap(
            text,
            WRAP - 2,
            expand_tabs=False,
            replace_whitespace=False,
            drop_whitespace=False,
            break_long_words=False,
        )
    else:
        chunks = [text]
    return [f"{prefix}{keyword} {quote(chunks[0])}"] + [prefix + quote(chunk) for chunk in chunks[1:]]


def render(entries):
    blocks = []
    for entry in entries:
        lines = list(entry.comments)
        if entry.flags:
            lines.append("#, " + ", ".join(entry.flags))
        if entry.previous:
            lines += format_string("msgid", entry.previous, prefix="#| ")
        lines += entry.msgid_lines or format_string("msgid", entry.msgid)
        lines += format_string("msgstr", entry.msgstr)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def read(path):
    with open(path, encoding="utf-8") as po:
        return parse(po.read())


def write(path, entries):
    with open(path, "w", encoding="utf-8") as po:
        po.write(render(entries))


# Headers ---------------------------------------------------------------------------------------


def header_field(header, name):
    match = re.search(rf"^{re.escape(name)}: (.*)$", header.msgstr, re.M)
    return match.group(1) if match else ""


def set_header_field(header, name, value):
    line = f"{name}: {value}"
    if re.search(rf"^{re.escape(name)}: .*$", header.msgstr, re.M):
        header.msgstr = re.sub(rf"^{re.escape(name)}: .*$", lambda _m: line, header.msgstr, flags=re.M)
    else:
        header.msgstr += line + "\n"


def new_header(template_header, lang, odoo_dir):
    """The template's header, for LANG: its Plural-Forms as Odoo's own base/i18n/LANG.po has it."""
    msgstr = re.sub(r"^(Language|Plural-Forms): .*\n", "", template_header.msgstr, flags=re.M)
    header = Entry(msgid="", msgstr=msgstr, comments=list(template_header.comments))
    set_header_field(header, "Language", lang)
    plural_forms = ""
    odoo_po = os.path.join(odoo_dir or "", "odoo", "addons", "base", "i18n", f"{lang}.po")
    if odoo_dir and os.path.exists(odoo_po):
        with open(odoo_po, encoding="utf-8") as po:
            plural_forms = header_field(parse(po.read().split("\n\n", 1)[0] + "\n")[0], "Plural-Forms")
    set_header_field(header, "Plural-Forms", plural_forms)
    return header


# Merge -----------------------------------------------------------------------------------------


def language(path):
    return os.path.basename(path).removesuffix(".po")


def merge(template, old_entries, header):
    """TEMPLATE's entries with the translations of OLD_ENTRIES (see the module docstring)."""
    old = {entry.msgid: entry for entry in old_entries[1:]}
    wanted = {entry.msgid for entry in template[1:]}
    gone = [msgid for msgid, entry in old.items() if msgid not in wanted and entry.msgstr]
    merged = [header]
    for entry in template[1:]:
        flags = [flag for flag in entry.flags if flag != "fuzzy"]
        new = Entry(entry.msgid, comments=entry.comments, flags=flags, msgid_lines=entry.msgid_lines)
        known = old.get(entry.msgid)
        if known and known.msgstr:
            new.msgstr = known.msgstr
            if known.fuzzy:
                new.flags.append("fuzzy")
                new.previous = known.previous
        elif gone:
            close = difflib.get_close_matches(entry.msgid, gone, n=1, cutoff=FUZZY_RATIO)
            if close:
                new.msgstr = old[close[0]].msgstr
                new.flags.append("fuzzy")
                new.previous = close[0]
        merged.append(new)
    return merged


def merge_files(pot_path, po_paths, odoo_dir=None):
    template = read(pot_path)
    by_lang = {language(path): path for path in po_paths}
    for path in po_paths:
        lang = language(path)
        if lang in ALIASES:
            continue
        old = read(path) if os.path.exists(path) else [new_header(template[0], lang, odoo_dir)]
        merged = merge(template, old, old[0])
        write(path, merged)
        report(lang, merged)
    for alias, source in ALIASES.items():
        if alias in by_lang and source in by_lang:
            if os.path.exists(by_lang[alias]):
                header = read(by_lang[alias])[0]
            else:
                header = new_header(template[0], alias, odoo_dir)
            write(by_lang[alias], [header] + read(by_lang[source])[1:])
            sys.stdout.write(f"{alias}: a copy of {source}.po\n")
    return 0


def report(lang, entries):
    todo = [entry for entry in entries[1:] if not entry.msgstr or entry.fuzzy]
    fuzzy = sum(1 for entry in todo if entry.msgstr)
    state = "all translated"
    if todo:
        state = f"{len(todo) - fuzzy} untranslated, {fuzzy} fuzzy"
    sys.stdout.write(f"{lang}: {len(entries) - 1} strings, {state}\n")


# Check -----------------------------------------------------------------------------------------


def placeholders(text):
    return Counter(PLACEHOLDER.findall(text))


def short(text, width=100):
    text = text.replace("\n", "\\n")
    return quote(text if len(text) <= width else text[: width - 3] + "...")


def check_po(template, path):
    """The problems of the PO at PATH against TEMPLATE's entries, as lines to print."""
    lang = language(path)
    if not os.path.exists(path):
        return [f"{lang}: {path} is missing (tools/i18n export {lang} makes it)"]
    entries = read(path)
    found = {entry.msgid: entry for entry in entries[1:]}
    wanted = {entry.msgid for entry in template[1:]}
    problems = []
    for entry in template[1:]:
        known = found.get(entry.msgid)
        if known is None:
            problems.append(f"missing: {short(entry.msgid)}")
        elif not known.msgstr:
            problems.append(f"untranslated: {short(entry.msgid)}")
        elif known.fuzzy:
            problems.append(f"fuzzy: {short(entry.msgid)}")
        elif placeholders(known.msgid) != placeholders(known.msgstr):
            expected = sorted(placeholders(known.msgid).elements())
            problems.append(
                f"placeholders differ: {short(entry.msgid)} has {expected}, "
                f"its translation {sorted(placeholders(known.msgstr).elements())}"
            )
    problems += [f"not in the template: {short(msgid)}" for msgid in found if msgid not in wanted]
    for problem in problems:
        sys.stdout.write(f"  {lang}: {problem}\n")
    if problems:
        return [f"{lang}: {len(wanted)} strings, {len(problems)} problem(s) listed above"]
    sys.stdout.write(f"{lang}: {len(wanted)} strings, all translated\n")
    return []


def check_files(pot_path, po_paths, committed=None, summary=None):
    """Check every PO; print the failures and the count line "i18n suite: N passed, N failed,
    0 skipped" (one test per PO, and one for the committed template with --template), as
    tools/test_counts.py prints a suite's; with SUMMARY, append that row to .ci/run's summary."""
    template = read(pot_path)
    failures = []
    passed = failed = 0
    if committed:
        if same_template(pot_path, committed):
            passed += 1
        else:
            failed += 1
            failures.append(
                f"{committed} is not what the export writes today (run tools/i18n export): Odoo "
                "loads only the translations of the msgids it holds"
            )
    by_lang = {language(path): path for path in po_paths}
    for path in po_paths:
        if language(path) not in ALIASES:
            problems = check_po(template, path)
            failures += problems
            passed, failed = (passed, failed + 1) if problems else (passed + 1, failed)
    for alias, source in ALIASES.items():
        if alias in by_lang and source in by_lang:
            if not os.path.exists(by_lang[alias]) or read(by_lang[alias])[1:] != read(by_lang[source])[1:]:
                failures.append(f"{alias}: not the copy of {source}.po (run tools/i18n export)")
                failed += 1
            else:
                sys.stdout.write(f"{alias}: a copy of {source}.po\n")
                passed += 1
    for failure in failures:
        sys.stdout.write(f"FAILED: {failure}\n")
    sys.stdout.write(f"i18n suite: {passed} passed, {failed} failed, 0 skipped\n")
    if summary:
        record_suite(summary, passed, failed)
    return 1 if failures else 0


def record_suite(summary, passed, failed, status=None):
    """Append the row of the i18n suite to .ci/run's summary (tools/test_counts.py)."""
    status = status or ("FAILED" if failed else "ok")
    write_summary_row(summary, "i18n", status, passed=passed, failed=failed, errors=0, skipped=0, known=0)


def same_template(path_a, path_b):
    texts = []
    for path in (path_a, path_b):
        if not os.path.exists(path):
            return False
        with open(path, encoding="utf-8") as pot:
            texts.append(DATE_LINE.sub("", pot.read()))
    return texts[0] == texts[1]


def main(argv):
    options = {}
    args = []
    rest = iter(argv)
    for arg in rest:
        if arg in ("--odoo", "--template", "--summary"):
            options[arg] = next(rest, None)
        else:
            args.append(arg)
    if len(args) >= 2 and args[0] == "merge":
        return merge_files(args[1], args[2:], options.get("--odoo"))
    if len(args) >= 2 and args[0] == "check":
        return check_files(args[1], args[2:], options.get("--template"), options.get("--summary"))
    if len(args) == 3 and args[0] == "same":
        return 0 if same_template(args[1], args[2]) else 1
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
