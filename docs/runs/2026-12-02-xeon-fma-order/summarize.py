import sys, re, collections
# Per version and row: medians and mins over rounds (ms).
rows = collections.OrderedDict()
ver = None
def ms(v, u): return float(v) / (1000 if u == 'us' else 1)
for line in open(sys.argv[1], errors='replace'):
    m = re.match(r'### round (\d+) (\w+)', line)
    if m: ver = m.group(2); continue
    m = re.match(r'(\S+)\s+(forward|backward|step)\s+f32\s+(\S+)\s+([\d.]+) (ms|us)\s+([\d.]+) (ms|us)', line)
    if m and ver:
        key = (m.group(1), m.group(3))
        rows.setdefault(key, {}).setdefault(ver, []).append((ms(m.group(4), m.group(5)), ms(m.group(6), m.group(7))))
for (k, s), d in rows.items():
    o, n = d.get('old', []), d.get('new', [])
    fmt = lambda l: ' '.join(f'{a:.2f}/{b:.2f}' for a, b in l)
    best = lambda l: min(b for a, b in l)
    print(f'{k:16} {s:20} old {fmt(o):40} new {fmt(n):40} best-min old/new {best(o)/best(n):.2f}x')
