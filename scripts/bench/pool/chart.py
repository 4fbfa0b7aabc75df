"""Draws the pool benchmark's results as a PNG: one row per case, panels for
hand-off wall time and parent CPU (log scale) and peak summed PSS.

matplotlib when it is installed (Debian: python3-matplotlib); otherwise a
small built-in renderer (bars, a 5x7 pixel font, zlib) writes the PNG."""

import math
import struct
import zlib

COLORS = {"a": (214, 96, 77), "b": (67, 147, 195), "c": (244, 165, 80),
          "d": (120, 120, 120)}
METRICS = [("handoff_s", "hand-off wall (s)", True),
           ("cpu_s", "parent CPU (s)", True),
           ("peak_pss_mib", "peak summed PSS (MiB)", False)]


def _value_text(v, unit):
    if unit == "MiB":
        return "%.0f" % v
    return "%.2f" % v if v < 10 else "%.0f" % v


def draw(summary, labels, path):
    cases = [c for c in ("array", "dict")
             if any(s["case"] == c for s in summary)]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _draw_builtin(summary, labels, cases, path)
        return "built-in PNG writer (python3-matplotlib draws a nicer one)"
    fig, axes = plt.subplots(len(cases), len(METRICS), squeeze=False,
                             figsize=(4.2 * len(METRICS), 3.4 * len(cases)))
    for r, case in enumerate(cases):
        rows = [s for s in summary if s["case"] == case]
        for c, (key, title, log) in enumerate(METRICS):
            ax = axes[r][c]
            vals = [s[key] for s in rows]
            names = [labels[s["method"]] for s in rows]
            colors = ["#%02x%02x%02x" % COLORS[s["method"]] for s in rows]
            bars = ax.bar(range(len(rows)), vals, color=colors)
            if log:
                ax.set_yscale("log")
            ax.set_title("%s: %s" % (case, title), fontsize=9)
            ax.set_xticks(range(len(rows)))
            ax.set_xticklabels([n.split(" ", 1)[0] for n in names])
            unit = "MiB" if key.endswith("mib") else "s"
            for b, v in zip(bars, vals):
                ax.annotate(_value_text(v, unit),
                            (b.get_x() + b.get_width() / 2, v),
                            ha="center", va="bottom", fontsize=8)
            ax.margins(y=0.25)
    handles = [plt.Rectangle((0, 0), 1, 1,
                             color="#%02x%02x%02x" % COLORS[m])
               for m in ("a", "b", "c", "d")]
    fig.legend(handles, [labels[m] for m in ("a", "b", "c", "d")],
               loc="lower center", ncol=4, fontsize=9)
    fig.suptitle("Pool(2), fork, 16 tasks each receiving the whole object",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return "matplotlib"

# ----------------------------------------------------- built-in renderer


_FONT = {
    "A": ".###.#...##...#######...##...##...#",
    "B": "####.#...##...#####.#...##...#####.",
    "C": ".###.#...##....#....#....#...#.###.",
    "D": "####.#...##...##...##...##...#####.",
    "E": "######....#....####.#....#....#####",
    "F": "######....#....####.#....#....#....",
    "G": ".###.#...##....#.####...##...#.####",
    "H": "#...##...##...#######...##...##...#",
    "I": ".###...#....#....#....#....#...###.",
    "J": "..###...#....#....#....#.#..#..##..",
    "K": "#...##..#.#.#..##...#.#..#..#.#...#",
    "L": "#....#....#....#....#....#....#####",
    "M": "#...###.###.#.##.#.##...##...##...#",
    "N": "#...##...###..##.#.##..###...##...#",
    "O": ".###.#...##...##...##...##...#.###.",
    "P": "####.#...##...#####.#....#....#....",
    "Q": ".###.#...##...##...##.#.##..#..##.#",
    "R": "####.#...##...#####.#.#..#..#.#...#",
    "S": ".#####....#.....###.....#....#####.",
    "T": "#####..#....#....#....#....#....#..",
    "U": "#...##...##...##...##...##...#.###.",
    "V": "#...##...##...##...##...#.#.#...#..",
    "W": "#...##...##...##.#.##.#.##.#.#.#.#.",
    "X": "#...##...#.#.#...#...#.#.#...##...#",
    "Y": "#...##...#.#.#...#....#....#....#..",
    "Z": "#####....#...#...#...#...#....#####",
    "0": ".###.#...##..###.#.###..##...#.###.",
    "1": "..#...##....#....#....#....#...###.",
    "2": ".###.#...#....#...#...#...#...#####",
    "3": "#####...#...#.....#.....##...#.###.",
    "4": "...#...##..#.#.#..#.#####...#....#.",
    "5": "######....####.....#....##...#.###.",
    "6": "..##..#...#....####.#...##...#.###.",
    "7": "#####....#...#...#...#....#....#...",
    "8": ".###.#...##...#.###.#...##...#.###.",
    "9": ".###.#...##...#.####....#...#..##..",
    ".": "..........................##...##..",
    ",": "....................##....#...#....",
    "(": "...#...#...#....#....#.....#.....#.",
    ")": ".#.....#.....#....#....#...#...#...",
    ":": "......##...##........##...##.......",
    "/": ".........#...#...#...#...#.........",
    "-": "...............#####...............",
    "+": ".......#....#..#####..#....#.......",
    "%": "##...##..#...#...#...#...#..##...##",
    "=": "..........#####.....#####..........",
    "_": "..............................#####",
    " ": "." * 35,
}


def _glyph(ch):
    g = _FONT.get(ch.upper(), _FONT[" "])
    return (g + "." * 35)[:35]


class _Canvas(object):
    def __init__(self, w, h):
        self.w, self.h = w, h
        self.px = bytearray(b"\xff" * (w * h * 3))

    def rect(self, x0, y0, x1, y1, rgb):
        x0, x1 = max(0, int(x0)), min(self.w, int(x1))
        y0, y1 = max(0, int(y0)), min(self.h, int(y1))
        row = bytes(rgb) * max(0, x1 - x0)
        for y in range(y0, y1):
            i = (y * self.w + x0) * 3
            self.px[i:i + len(row)] = row

    def text(self, x, y, s, scale=2, rgb=(0, 0, 0), center=False):
        if center:
            x -= len(s) * 6 * scale // 2
        for ch in s:
            g = _glyph(ch)
            for r in range(7):
                for c in range(5):
                    if g[r * 5 + c] == "#":
                        self.rect(x + c * scale, y + r * scale,
                                  x + (c + 1) * scale, y + (r + 1) * scale,
                                  rgb)
            x += 6 * scale

    def png(self, path):
        raw = b"".join(b"\x00" + bytes(self.px[y * self.w * 3:
                                              (y + 1) * self.w * 3])
                       for y in range(self.h))

        def chunk(kind, data):
            c = struct.pack(">I", len(data)) + kind + data
            return c + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
        with open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n")
            f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h,
                                               8, 2, 0, 0, 0)))
            f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
            f.write(chunk(b"IEND", b""))


def _draw_builtin(summary, labels, cases, path):
    pw, ph = 400, 300  # one panel
    top, bottom = 40, 70
    cv = _Canvas(pw * len(METRICS), ph * len(cases) + bottom + top)
    cv.text(cv.w // 2, 10, "POOL(2), FORK, 16 TASKS EACH RECEIVING THE WHOLE "
            "OBJECT", center=True)
    for r, case in enumerate(cases):
        rows = [s for s in summary if s["case"] == case]
        for c, (key, title, log) in enumerate(METRICS):
            x0, y0 = c * pw, top + r * ph
            cv.text(x0 + pw // 2, y0 + 6, "%s: %s" % (case, title),
                    center=True)
            base_y, plot_h = y0 + ph - 30, ph - 80
            cv.rect(x0 + 30, base_y, x0 + pw - 20, base_y + 2, (0, 0, 0))
            vals = [s[key] for s in rows]
            hi = max(vals) or 1.0
            lo = min(v for v in vals if v > 0) if any(vals) else 1.0
            unit = "MiB" if key.endswith("mib") else "s"
            bw = (pw - 60) // max(1, len(rows))
            for i, (s, v) in enumerate(zip(rows, vals)):
                if log:
                    floor = lo / 3.0
                    frac = (math.log10(max(v, floor) / floor)
                            / math.log10(hi / floor)) if hi > floor else 1
                else:
                    frac = v / hi
                h = max(1, int(frac * plot_h))
                bx = x0 + 35 + i * bw
                cv.rect(bx + 8, base_y - h, bx + bw - 8, base_y,
                        COLORS[s["method"]])
                cv.text(bx + bw // 2, base_y - h - 16, _value_text(v, unit),
                        center=True)
                cv.text(bx + bw // 2, base_y + 8,
                        labels[s["method"]].split(" ", 1)[0], center=True)
            if log:
                cv.text(x0 + pw - 90, y0 + 24, "LOG SCALE", scale=1,
                        rgb=(90, 90, 90))
    ly = cv.h - bottom + 20
    x = 20
    for m in ("a", "b", "c", "d"):
        cv.rect(x, ly, x + 16, ly + 14, COLORS[m])
        cv.text(x + 22, ly, labels[m])
        x += 22 + len(labels[m]) * 12 + 24
    cv.png(path)
