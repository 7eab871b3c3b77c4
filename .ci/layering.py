#!/usr/bin/env python3
"""Fails when modules of a crate import each other in a circle.

    python3 .ci/layering.py crates/gateway/src crates/backplane/src

Each file is a module (`mod.rs` and `lib.rs` are their folder's). An edge
A -> B is a path A names that leads into B: `use crate::..`, `use super::..`,
`crate::`/`super::` paths in code, and paths through A's own submodules.
Names re-exported with `pub use` count as the module that defines them, so a
crate root that re-exports its modules does not make a circle by itself.
Test modules (`#[cfg(test)] mod tests`, `tests.rs`) are left out.
"""
import os
import re
import sys


def modules(root):
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith('.rs') or (name == 'main.rs' and folder == root):
                continue
            parts = os.path.relpath(os.path.join(folder, name), root)[:-3].split('/')
            if parts[-1] in ('mod', 'lib'):
                parts = parts[:-1]
            if parts and parts[-1] == 'tests':
                continue
            found['::'.join(parts)] = os.path.join(folder, name)
    return found


def expand(tree):
    """`a::{b, c::{d}}` -> [`a::b`, `a::c::d`]."""
    match = re.match(r'^([\w:]*?)\{(.*)\}$', tree, re.S)
    if not match:
        return [tree.split(' as ')[0]]
    prefix, inner, parts, depth, part = match.group(1), match.group(2), [], 0, ''
    for char in inner:
        depth += char == '{'
        depth -= char == '}'
        if char == ',' and depth == 0:
            parts.append(part)
            part = ''
        else:
            part += char
    parts.append(part)
    return [prefix + path for p in parts if p.strip() for path in expand(p.strip())]


def use_paths(source, public_only=False):
    pattern = r'\bpub(?:\([a-z]+\))?\s+use\s+([^;]+);' if public_only else r'\buse\s+([^;]+);'
    trees = (re.sub(r'\s+as\s+', ' as ', m.group(1)) for m in re.finditer(pattern, source, re.S))
    return [p for tree in trees for p in expand(re.sub(r'(?<! as)\s+(?!as )', '', tree))]


def absolute(segments, here):
    if segments[0] == 'crate':
        return segments[1:]
    base = here[:]
    if segments[0] == 'self':
        segments = segments[1:]
    while segments and segments[0] == 'super':
        base, segments = base[:-1], segments[1:]
    return base + segments


def graph(root):
    mods = modules(root)
    sources = {}
    for mod, path in mods.items():
        source = open(path, encoding='utf-8').read()
        source = re.sub(r'#\[cfg\(test\)\]\s*mod tests \{.*', '', source, flags=re.S)
        sources[mod] = re.sub(r'//.*', '', source)
    aliases = {}
    for mod, source in sources.items():
        here = mod.split('::') if mod else []
        for path in use_paths(source, public_only=True):
            full = absolute(path.split('::'), here)
            aliases[tuple(here + [full[-1]])] = full

    def module_of(full):
        for _ in range(10):
            for k in range(len(full), 0, -1):
                if tuple(full[:k]) in aliases and '::'.join(full[:k]) not in mods:
                    full = aliases[tuple(full[:k])] + full[k:]
                    break
            else:
                break
        for k in range(len(full), -1, -1):
            if '::'.join(full[:k]) in mods:
                return '::'.join(full[:k])
        return None

    edges = {}
    for mod, source in sources.items():
        here = mod.split('::') if mod else []
        paths = use_paths(source) + re.findall(r'\b((?:crate|super)(?:::\w+)+)', source)
        for child in re.findall(r'^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+(\w+);', source, re.M):
            if re.search(r'(?<![\w:])' + child + r'::\w', source):
                paths.append('self::' + child)
        for path in paths:
            segments = path.split('::')
            if segments[0] not in ('crate', 'super', 'self'):
                continue
            target = module_of(absolute(segments, here))
            if target is not None and target != mod:
                edges.setdefault(mod, set()).add(target)
    return mods, edges


def circles(mods, edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in mods:
        if v not in index:
            visit(v)
    return found


def main(roots):
    failed = False
    for root in roots:
        mods, edges = graph(root)
        for circle in circles(mods, edges):
            failed = True
            names = ', '.join(m or '(crate root)' for m in circle)
            print(f'layering: {root}: modules import each other in a circle: {names}')
        if not failed:
            print(f'layering: {root}: {len(mods)} modules, no import circle')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
