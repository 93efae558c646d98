#!/usr/bin/env python3
"""Copies the Lua of design/v3 into the Swift string literals of Sources/Kiln/StoreV3 (the test
`theLuaTextIsTheDraftsOfDesignV3` checks that they are the same text). Run after editing a draft."""
import glob, os, re

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, '..', '..', 'Sources', 'Kiln', 'StoreV3')


def literal(text):
    """The Lua as the lines of a Swift multi-line literal closed by `    \"\"\"`."""
    assert '"""' not in text
    lines = text.rstrip('\n').replace('\\', '\\\\').split('\n')
    return '\n'.join(('    ' + l) if l else '' for l in lines) + '\n'


def replace(path, opener, text):
    s = open(path).read()
    start = s.index(opener) + len(opener)
    end = s.index('    """', start)
    s = s[:start] + literal(text) + s[end:]
    open(path, 'w').write(s)


replace(os.path.join(SRC, 'KilnScriptsV3.swift'), 'static let prelude = """\n', open(os.path.join(HERE, 'prelude.lua')).read())
for path in glob.glob(os.path.join(SRC, 'KilnStoreV3+*.swift')):
    for name in re.findall(r'Script\(name: "(\w+)", body: """', open(path).read()):
        replace(path, 'Script(name: "%s", body: """\n' % name, open(os.path.join(HERE, name + '.lua')).read())
        print('synced', name, '->', os.path.basename(path))
