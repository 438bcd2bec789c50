#!/usr/bin/env python3
"""tools/prof_lines.py: the source lines that hold a kernel's stall samples.

Reads the CSV that `ncu --import R --page source --csv --print-source cuda`
writes (one block per profiled kernel, each with a header row naming its
columns) and prints, per block, the lines with the most warp-stall samples,
their share and their text. Used by tools/gpu-check.sh's prof step on the
GPU machine; when the CSV's shape is not recognised it prints the start of
the file instead, so nothing is lost. Then, per block, the stretches of
SASS between barriers with their share of the samples and main stall reasons.
  tools/prof_lines.py SOURCE.csv [TOP]
"""
import csv
import sys


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 30
    rows = list(csv.reader(open(path, errors="replace")))
    blocks, cur, title = [], None, ""
    for r in rows:
        cells = [c.strip() for c in r]
        if len(cells) >= 2 and cells[0] == "Kernel Name":  # names the block that follows
            title = cells[1][:160]
            continue
        stall = [i for i, c in enumerate(cells) if c.startswith("Warp Stall Sampling (All")]
        if stall:
            src = [i for i, c in enumerate(cells) if c in ("Source", "# Source")]
            line = [i for i, c in enumerate(cells) if c in ("Address", "#", "Line", "# Line")]
            cur = {"stall": stall[0], "rows": [], "title": title,
                   "src": src[0] if src else len(cells) - 1, "line": line[0] if line else 0,
                   "reasons": [(c[6:], i) for i, c in enumerate(cells)
                               if c.startswith("stall_") and "Not Issued" not in c]}
            blocks.append(cur)
            title = ""
            continue
        if cur is None or len(cells) <= cur["stall"]:
            continue
        try:
            n = float(cells[cur["stall"]] or 0)
        except ValueError:
            continue
        rs = [(name, float(cells[i] or 0)) for name, i in cur["reasons"] if i < len(cells)]
        cur["rows"].append((n, cells[cur["line"]], cells[cur["src"]][:110], rs))
    if not blocks:
        print("prof_lines: no stall column found; the file starts:")
        for r in rows[:40]:
            print(",".join(r)[:200])
        return
    for k, b in enumerate(blocks):
        tot = sum(r[0] for r in b["rows"]) or 1.0
        print(f"== block {k} {b['title']} total stall samples {tot:.0f}")
        for n, ln, src, _ in sorted(b["rows"], key=lambda x: -x[0])[:top]:
            if n <= 0:
                break
            print(f"  {100 * n / tot:5.1f}%  {ln:>5}  {src}")
        # SASS view: the stretches between barriers, with their main stall reasons
        seg, a = [], 0
        for i, r in enumerate(b["rows"]):
            if "BAR.SYNC" in r[2] or i == len(b["rows"]) - 1:
                seg.append((a, i))
                a = i + 1
        for a, e in seg:
            part = b["rows"][a:e + 1]
            sm = sum(r[0] for r in part)
            if sm < 0.01 * tot:
                continue
            why = {}
            for r in part:
                for name, v in r[3]:
                    why[name] = why.get(name, 0.0) + v
            top5 = sorted(why.items(), key=lambda x: -x[1])[:5]
            print(f"  instrs {a:5d}-{e:5d} {100 * sm / tot:5.1f}%  " +
                  " ".join(f"{n}:{100 * v / tot:.1f}" for n, v in top5))


if __name__ == "__main__":
    main()
