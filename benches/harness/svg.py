"""A horizontal bar chart of (label, value) rows, written by hand (no plotting library)."""

from xml.sax.saxutils import escape


def bars(path, title, rows, unit="ms"):
    width, left, bar_w, row_h, top = 820, 390, 330, 26, 40
    height = top + row_h * len(rows) + 16
    peak = max((v for _, v in rows), default=1) or 1
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="22" font-size="14" font-weight="bold">{escape(title)}</text>']
    for i, (label, value) in enumerate(rows):
        y = top + i * row_h
        w = max(1.0, bar_w * value / peak)
        out.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        out.append(f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" '
                   f'fill="#4a7ab5"/>')
        out.append(f'<text x="{left + w + 6:.1f}" y="{y + 15}">{value:.2f} {escape(unit)}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
