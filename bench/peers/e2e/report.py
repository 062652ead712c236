#!/usr/bin/env python3
"""Writes the benchmark report of scripts/bench from its JSON Lines results.

    report.py RESULTS_DIR MARKDOWN_FILE CHART_DIR [--meta meta.json]

Reads RESULTS_DIR/*.jsonl (one figure per line: section, row, impl, unit,
better, median, min, max, runs, optional values/note, or skipped), writes
one Markdown table per section (rows x implementations; each cell the
median, min-max, and smtpwire's advantage) and one PNG chart per section and
unit with gnuplot (CHART_DIR/bench-<section>-<unit>.png), linked from the
Markdown by a path relative to it.

smtpwire's advantage on a row is peer/smtpwire when lower is better and
smtpwire/peer when higher is better, so > 1 always means smtpwire is ahead.
When both sides have per-repetition values from the same run (the
repetitions alternate between implementations), it is the median of the
pairwise ratios; otherwise the ratio of the medians.
"""
import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess

ORDER = ["inmem", "instructions", "plain", "starttls", "profile", "client", "idle", "growth"]
TITLES = {
    "inmem": "Protocol engines in memory (Google Benchmark, same canned bytes for every peer)",
    "instructions": "Instruction counts (callgrind), repeatable on a noisy machine",
    "plain": "End to end, plain SMTP: Postfix's smtp-source into each server",
    "starttls": "End to end, STARTTLS: smtpwire-loadgen into each TLS-capable server",
    "profile": "Where smtpwire-sink spends its CPU under STARTTLS",
    "client": "The client side: into Postfix's smtp-sink",
    "idle": "Scale: idle sessions",
    "growth": "Cost growth with the message size (one message, streamed)",
}
ABOUT = {
    "inmem": "bench/peers/inmem/run: smtpwire's Google Benchmark rows beside the peers' parsers "
             "on the same canned bytes, with memcpy/memchr over the same bytes as the floor.",
    "plain": "Postfix's smtp-source (`-d`: many messages per connection) drives each server on "
             "127.0.0.1; every server discards the message after reading it to the end "
             "(smtpwire-sink `--discard`, one thread). Messages/s include the client's own cost, "
             "and on 2 cores the client competes with the server: the server's CPU seconds per "
             "1,000 messages (utime+stime from /proc/PID/stat over the run) is the figure that "
             "isolates the server.",
    "starttls": "bench/loadgen/smtpwire-loadgen (smtpwire's client engine, OpenSSL adapter, POSIX "
                "driver; one thread and one TLS context per concurrent session) runs STARTTLS with "
                "the server certificate verified against a throwaway CA (P-256), full handshakes "
                "(no resumption). The same client drives every server, so the load generator's "
                "own limits are common to all columns; the server CPU rows isolate the servers.",
    "profile": "`perf record -F 1999 -p <smtpwire-sink>` (user and kernel) while smtpwire-loadgen "
               "runs STARTTLS sessions of 10 messages of 4 KiB; `perf report --sort dso,sym` "
               "samples grouped by symbol: the engines are the functions in namespace smtpwire:: "
               "outside smtpwire::openssl and smtpwire::posix. It is an -O2 build: engine code "
               "inlined into a caller counts where it was inlined (the sink's own code, the "
               "POSIX loop), so the engines' share is a lower bound and the tool/loop rows are an "
               "upper bound on what could be engine code.",
    "client": "Clients into the same Postfix smtp-sink: smtpwire-send (one process, one message), "
              "smtpwire-loadgen (sessions of many messages) and Postfix's smtp-source. Client CPU "
              "is the client process's rusage.",
    "idle": "N connections that each read the greeting and then stay silent; the server's VmRSS "
            "growth divided by N (after 50 warm-up sessions, closed again). 'STARTTLS offered': "
            "the server was started with a certificate, the sessions did not start TLS.",
    "growth": "One message of the given size sent by a streaming generator (1 MiB of lines "
              "repeated; never the whole message in memory) into a freshly started server; time "
              "from the 354 to the 250 after the final dot, the server's CPU per MiB, and its "
              "peak RSS (VmHWM). Linear time shows as a flat CPU per MiB; constant memory as a "
              "flat peak RSS.",
}
BASELINES = ("memcpy", "memchr")  # floors, not peers
IMPL_ORDER = ["smtpwire", "smtpwire-loadgen", "postfix-smtp-sink", "smtp-source", "go-smtp",
              "nodemailer", "aiosmtpd", "python-smtplib", "stalwart-smtp-proto", "memcpy",
              "memchr"]


def load(results):
    recs = []
    for path in sorted(glob.glob(os.path.join(results, "*.jsonl"))):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    recs.append(json.loads(line))
    return recs


def fmt(v):
    a = abs(v)
    if a >= 1000:
        return "{:,.0f}".format(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    return "%.3g" % v


def advantage(sw, peer):
    """smtpwire's advantage over peer (> 1: smtpwire ahead), or None."""
    higher = sw.get("better") == "higher"

    def r(s, p):
        if s <= 0 or p <= 0:
            return None
        return s / p if higher else p / s

    sv, pv = sw.get("values"), peer.get("values")
    if sv and pv and len(sv) == len(pv):
        pairs = [r(s, p) for s, p in zip(sv, pv)]
        pairs = [x for x in pairs if x is not None]
        if pairs:
            return statistics.median(pairs)
    return r(sw["median"], peer["median"])


def impl_key(i):
    return (IMPL_ORDER.index(i) if i in IMPL_ORDER else len(IMPL_ORDER), i)


def section_table(recs):
    rows, impls, skipped = [], [], []
    cells = {}
    for r in recs:
        if r["impl"] not in impls:
            impls.append(r["impl"])
        if "skipped" in r:
            skipped.append(r)
            continue
        if r["row"] not in rows:
            rows.append(r["row"])
        cells[(r["row"], r["impl"])] = r
    impls = sorted({i for (_, i) in cells}, key=impl_key)
    out = ["| row | unit | " + " | ".join(impls) + " |",
           "| --- | --- | " + " | ".join("---" for _ in impls) + " |"]
    for row in rows:
        any_rec = next(cells[(row, i)] for i in impls if (row, i) in cells)
        unit = "%s (%s is better)" % (any_rec["unit"], any_rec["better"])
        sw = cells.get((row, "smtpwire"))
        line = []
        for i in impls:
            c = cells.get((row, i))
            if c is None:
                line.append("")
                continue
            text = "**%s**" % fmt(c["median"]) if i == "smtpwire" else fmt(c["median"])
            if c.get("runs", 1) > 1:
                text += " (%s–%s)" % (fmt(c["min"]), fmt(c["max"]))
            if sw is not None and i != "smtpwire":
                adv = advantage(sw, c)
                if adv is not None and i in BASELINES:
                    text += " · baseline: smtpwire at **%.2fx** of its speed" % adv
                elif adv is not None:
                    text += " · smtpwire **%.2fx**" % adv
            line.append(text)
        out.append("| %s | %s | %s |" % (row, unit, " | ".join(line)))
    # Per-run sizes ("N messages per run") stay in the JSON Lines only.
    notes = sorted({r["note"] for r in recs if r.get("note") and "per run" not in r["note"]})
    return out, skipped, notes


def slug(s):
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def chart(recs, section, unit, path):
    """A clustered bar chart (log scale) of the medians of one unit."""
    gp = shutil.which("gnuplot")
    if gp is None:
        return False
    rows, impls = [], []
    vals = {}
    for r in recs:
        if "skipped" in r or r.get("unit") != unit:
            continue
        if r["row"] not in rows:
            rows.append(r["row"])
        if r["impl"] not in impls:
            impls.append(r["impl"])
        vals[(r["row"], r["impl"])] = r["median"]
    if not rows:
        return False
    impls.sort(key=impl_key)
    # The unit is on the axis: a prefix every row shares ("messages/s, ")
    # only crowds the labels.
    prefix = os.path.commonprefix(rows) if len(rows) > 1 else ""
    prefix = prefix[:prefix.rfind(", ") + 2] if ", " in prefix else ""
    data = path + ".dat"
    with open(data, "w") as f:
        f.write("row " + " ".join('"%s"' % i for i in impls) + "\n")
        for row in rows:
            label = row[len(prefix):]
            label = label if len(label) <= 40 else label[:38] + "…"
            f.write('"%s" ' % label.replace('"', "'") + " ".join(
                "%g" % vals[(row, i)] if (row, i) in vals else "-" for i in impls) + "\n")
    positive = all(v > 0 for v in vals.values())
    width = min(1800, max(900, 40 * len(rows) * max(1, len(impls)) + 300))
    better = next(r["better"] for r in recs if r.get("unit") == unit and "skipped" not in r)
    script = """
set terminal pngcairo size {w},560 noenhanced font ",10"
set output "{out}"
set title "{title}"
set ylabel "{unit} ({better} is better{log})"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set datafile missing "-"
set key outside right top
set xtics rotate by -25 scale 0
set grid ytics
{logscale}
set yrange [{ymin}:*]
plot for [i=2:{n}] "{data}" using i:xtic(1) title columnheader(i)
""".format(w=width, out=path, title=TITLES.get(section, section).replace('"', "'"),
           unit=unit, better=better, log=", log scale" if positive else "",
           logscale="set logscale y" if positive else "", ymin="*" if positive else "0",
           n=len(impls) + 1, data=data)
    p = subprocess.run([gp], input=script, text=True, capture_output=True, timeout=60)
    os.remove(data)
    return p.returncode == 0 and os.path.exists(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("markdown")
    ap.add_argument("charts")
    ap.add_argument("--meta", default="")
    a = ap.parse_args()
    recs = [r for r in load(a.results) if r.get("section") != "timing"]
    timing = [r for r in load(a.results) if r.get("section") == "timing"]
    meta = {}
    if a.meta and os.path.exists(a.meta):
        with open(a.meta) as f:
            meta = json.load(f)
    os.makedirs(a.charts, exist_ok=True)
    md_dir = os.path.dirname(os.path.abspath(a.markdown))
    out = ["# smtpwire side by side with its peers", ""]
    out.append("Generated by `scripts/bench`%s; do not edit by hand. Every figure below comes from "
               "one run on one machine:" % (" --smoke" if meta.get("smoke") else ""))
    out.append("")
    for k in ("date", "machine", "cpu", "nproc", "kernel", "compiler", "versions", "duration"):
        if k in meta:
            out.append("- **%s**: %s" % (k, meta[k]))
    if timing:
        out.append("- **sections**: " + ", ".join("%s %s s" % (t["row"], t["seconds"])
                                                  for t in timing))
    out += ["", "How to read the tables: each cell is the median over the repetitions (after a "
            "warm-up run), then the min–max, then **smtpwire's advantage** over that peer on that "
            "row: > 1 means smtpwire is ahead, < 1 that the peer is. It is computed pair by pair: "
            "the repetitions of the implementations alternate in time, and the advantage is the "
            "median of the ratios of the pairs (the ratio of the medians where a program reports "
            "only medians). A machine shared with other work moves every absolute figure; the "
            "ratios move much less. Against a baseline (memcpy, memchr over the same bytes) the "
            "ratio says at what fraction of the baseline's speed smtpwire runs.", ""]
    sections = sorted({r["section"] for r in recs},
                      key=lambda s: (ORDER.index(s) if s in ORDER else len(ORDER), s))
    for sec in sections:
        srecs = [r for r in recs if r["section"] == sec]
        out += ["## %s" % TITLES.get(sec, sec), ""]
        if sec in ABOUT:
            out += [ABOUT[sec], ""]
        table, skipped, notes = section_table(srecs)
        if len(table) > 2:
            out += table
        else:
            out.append("No figures in this run.")
        out.append("")
        for s in skipped:
            out.append("- %s, %s: **skipped**, %s" % (s["impl"], s["row"], s["skipped"]))
        for n in notes:
            out.append("- note: %s" % n)
        if skipped or notes:
            out.append("")
        for unit in sorted({r["unit"] for r in srecs if "unit" in r}):
            name = "bench-%s-%s.png" % (sec, slug(unit))
            path = os.path.join(a.charts, name)
            if chart(srecs, sec, unit, path):
                rel = os.path.relpath(path, md_dir)
                out += ["![%s, %s](%s)" % (TITLES.get(sec, sec), unit, rel), ""]
    with open(a.markdown, "w") as f:
        f.write("\n".join(out).rstrip() + "\n")


if __name__ == "__main__":
    main()
