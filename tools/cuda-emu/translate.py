#!/usr/bin/env python3
"""tools/cuda-emu/translate.py SRC.cu OUT.cpp: rewrite kernel launches
`k<<<grid, block, smem, stream>>>(args);` into emulator calls
`emu_launch(dim3(grid), dim3(block), [&]() { k(args); });` (test tool)."""
import re
import sys

src = open(sys.argv[1]).read()
pat = re.compile(r'([A-Za-z_]\w*(?:<[^<>;]*>)?)<<<(.*?)>>>\((.*?)\);', re.S)


def rep(m):
    cfg = [c.strip() for c in m.group(2).split(',')]
    return 'emu_launch(dim3(%s), dim3(%s), [&]() { %s(%s); });' % (cfg[0], cfg[1], m.group(1), m.group(3))


out = pat.sub(rep, src)
open(sys.argv[2], 'w').write('#include "emu_device.h"\n#line 1 "%s"\n' % sys.argv[1] + out)
