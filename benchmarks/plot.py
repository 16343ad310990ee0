"""Draw ``docs/benchmarks.png`` from ``docs/benchmarks.json`` (written by ``benchmarks/run_all.py``).

    python3 benchmarks/plot.py [--json docs/benchmarks.json] [--out docs/benchmarks.png]

Needs matplotlib (the ``dev`` extra). Panels whose figures were not measured say so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("create", "wire", "daemons", "converge")
COLOURS = {"validate": "#bbbbbb", "create": "#4c72b0", "wire": "#55a868", "daemons": "#c44e52", "converge": "#8172b2"}


def _missing(ax, title: str) -> None:
    ax.set_title(title, fontsize=9)
    ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_axis_off()


def baseline(ax, doc: dict, name: str) -> None:
    """Raw vs labkit for one topology, stacked by phase, with labkit / raw per phase and in total."""
    title = f"{name}: plain script (raw) vs labkit"
    entry = (doc.get("raw_baseline") or {}).get(name)
    if not entry:
        return _missing(ax, title)
    rb = entry["raw_baseline"]
    where = "VM sandbox, TCG" if "VM" in (entry.get("where") or "") else "native"
    for x, who in enumerate(("raw", "labkit")):
        bottom = 0.0
        for phase in PHASES:
            v = rb["phases"][phase][f"{who}_s"]
            ax.bar(x, v, bottom=bottom, color=COLOURS[phase], label=phase if x == 0 else None, width=0.6)
            ratio = rb["phases"][phase]["ratio"]
            if who == "labkit" and ratio and v > 0.04 * rb["phases"]["total"]["labkit_s"]:
                ax.text(x + 0.32, bottom + v / 2, f"{phase} {ratio:.2f}x", va="center", fontsize=7)
            bottom += v
        if who == "labkit" and rb["phases"]["total"]["ratio"]:
            ax.text(x, bottom, f"total {rb['phases']['total']['ratio']:.2f}x", ha="center", va="bottom", fontsize=8)
    ax.set_xticks([0, 1])
    ax.set_xticklabels(["raw (ip, nsenter,\nsysctl, swanctl, vtysh)", "labkit"], fontsize=7)
    ax.set_xlim(-0.5, 2.0)
    ax.set_ylabel(f"seconds, median of {rb['rounds']} rounds")
    ax.set_title(f"{title}\n({rb['nodes']} nodes, {where}; target labkit/raw <= 1.10x)", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")


def scale_time(ax, rows: list[dict]) -> None:
    title = "hub + N spokes: lab-up until all registered with SAs"
    ok = [r for r in rows if r.get("ok")]
    if not ok:
        return _missing(ax, title)
    xs = [str(r["spokes"]) for r in ok]
    bottom = [0.0] * len(ok)
    for phase in ("validate", *PHASES):
        vals = [r["phases"].get(phase, 0.0) for r in ok]
        ax.bar(xs, vals, bottom=bottom, color=COLOURS[phase], label=phase)
        bottom = [b + v for b, v in zip(bottom, vals)]
    for x, total in zip(xs, bottom):
        ax.text(x, total, f"{total:.0f}s", ha="center", va="bottom", fontsize=8)
    failed = [r for r in rows if not r.get("ok")]
    if failed:
        ax.text(0.02, 0.95, "not reached: " + ", ".join(f"N={r['spokes']}" for r in failed), transform=ax.transAxes,
                fontsize=7, va="top", color="#c44e52")
    ax.set_xlabel("spokes")
    ax.set_ylabel("seconds (VM sandbox, TCG)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)


def scale_curves(ax, rows: list[dict]) -> None:
    title = "convergence: spokes registered / with SA at the hub"
    ok = [r for r in rows if r.get("ok") and r.get("samples")]
    if not ok:
        return _missing(ax, title)
    for r in ok:
        t = [s[0] for s in r["samples"]]
        line, = ax.plot(t, [s[1] for s in r["samples"]], label=f"N={r['spokes']} registered")
        ax.plot(t, [s[2] for s in r["samples"]], linestyle="--", color=line.get_color(), label=f"N={r['spokes']} SA")
    ax.set_xlabel("seconds after all daemons serve")
    ax.set_ylabel("spokes")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, ncol=2)


def scale_memory(ax, rows: list[dict]) -> None:
    title = "memory per node (PSS of its processes)"
    ok = [r for r in rows if r.get("ok")]
    if not ok:
        return _missing(ax, title)
    xs = [r["spokes"] for r in ok]
    ax.plot(xs, [r["hub_mib"] for r in ok], marker="o", label="hub")
    ax.plot(xs, [r["spoke_mib_mean"] for r in ok], marker="o", label="spoke (mean)")
    ax.set_xlabel("spokes")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)


def targets(ax, doc: dict) -> None:
    ax.set_axis_off()
    ax.set_title("targets", fontsize=9)
    lines = []
    for name, v in (doc.get("targets") or {}).items():
        state = {True: "met", False: "NOT met", None: "not measured"}[v["met"]]
        value = f"{v['value']:.2f}" if isinstance(v["value"], float) else str(v["value"])
        lines.append(f"{name}: {value} (target {v['target']}) {state}")
    boot = (doc.get("sandbox_boot") or {}).get("sandbox_boot")
    if boot:
        lines.append(f"sandbox: {boot['accel'].upper()}, {boot['kvm_reason']}")
    for name, r in ((doc.get("suite") or {}).get("suite") or {}).items():
        lines.append(f"suite, pytest {name}: {r['wall_s']:.0f}s wall, {r.get('tests', '?')} tests, "
                     f"{r.get('failures', '?')} failed")
    lines.append(f"generated {doc.get('generated_at', '?')}")
    ax.text(0, 1, "\n".join(lines), va="top", ha="left", fontsize=7, family="monospace", transform=ax.transAxes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=str(ROOT / "docs/benchmarks.json"))
    ap.add_argument("--out", default=str(ROOT / "docs/benchmarks.png"))
    args = ap.parse_args()
    try:
        import matplotlib
    except ImportError:
        print("plot: matplotlib is not installed: pip install matplotlib (or pip install -e '.[dev]')",
              file=sys.stderr)
        return 1
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    doc = json.loads(Path(args.json).read_text())
    rows = (doc.get("scale") or {}).get("scale") or []
    fig, axes = plt.subplots(2, 3, figsize=(17, 10))
    baseline(axes[0][0], doc, "routed")
    baseline(axes[0][1], doc, "dmvpn_phase2")
    scale_time(axes[0][2], rows)
    scale_curves(axes[1][0], rows)
    scale_memory(axes[1][1], rows)
    targets(axes[1][2], doc)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.suptitle("labkit benchmarks (docs/benchmarks.json)")
    fig.savefig(args.out, dpi=90)
    print(f"plot: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
