"""The README and docs/ hold together: every relative link (markdown links and images) in
README.md and docs/*.md points at a file or folder that exists, the README stays a five-minute
read (at most 170 lines), and it links every page of docs/.

Reads files only: no environment, no toolkit.
"""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / 'README.md'
DOCS = REPO / 'docs'
README_MAX_LINES = 170

# [text](target) and ![alt](target); the target stops at whitespace or ')', so an optional
# title ("...") after it is left out. Inline code spans are removed first (see links_in).
LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
CODE_SPAN = re.compile(r'`[^`\n]*`')
FENCE = re.compile(r'^\s*(```|~~~)')
EXTERNAL = ('http:', 'https:', 'mailto:')


def doc_files() -> list[Path]:
    return [README] + sorted(DOCS.glob('*.md'))


def links_in(text: str) -> list[tuple[int, str]]:
    """(line, target) of every link and image in a markdown text, outside code blocks and code
    spans."""
    found, in_fence = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        # A code span inside link text (``[`tools/`](../tools/)``) is kept as plain text; a
        # code span that merely shows link syntax is not a link.
        line = CODE_SPAN.sub(lambda m: 'x' * len(m.group(0)), line)
        found += [(number, m.group(1)) for m in LINK.finditer(line)]
    return found


def relative_targets(text: str) -> list[tuple[int, str]]:
    """(line, path) of every relative link: external schemes and pure #anchors left out, any
    #anchor suffix stripped."""
    out = []
    for number, target in links_in(text):
        if target.startswith(EXTERNAL) or target.startswith('#'):
            continue
        path = target.split('#', 1)[0]
        if path:
            out.append((number, path))
    return out


def broken_links(path: Path) -> list[str]:
    """'file:line: target' for every relative link of a markdown file that does not resolve
    relative to that file."""
    return [f'{path.name}:{number}: {target}'
            for number, target in relative_targets(path.read_text(encoding='utf-8'))
            if not (path.parent / target).exists()]


def test_docs_pages_exist():
    # The pages the README's table of contents promises (issue 29, point 7): a fixed list, not
    # one read from the README under test.
    expected = {'full_profile.md', 'trackers.md', 'references.md', 'nothing_lost.md',
                'seed_noise.md', 'released_weights.md', 'layout.md'}
    present = {p.name for p in DOCS.glob('*.md')}
    assert expected <= present, f'missing docs pages: {sorted(expected - present)}'


def test_every_relative_link_resolves():
    broken = [line for path in doc_files() for line in broken_links(path)]
    assert not broken, 'broken relative links:\n' + '\n'.join(broken)


def test_links_are_found_at_all():
    # The scan must see the links that are there, or the test above passes vacuously: the
    # README links docs/layout.md and docs/seed_noise.md shows the committed step plot.
    readme = [t for _, t in relative_targets(README.read_text(encoding='utf-8'))]
    assert 'docs/layout.md' in readme
    seed_noise = [t for _, t in relative_targets((DOCS / 'seed_noise.md').read_text())]
    assert 'table4_smoke_3seeds_steps.png' in seed_noise
    assert (DOCS / 'table4_smoke_3seeds_steps.png').is_file()


def test_readme_is_short_and_links_every_docs_page():
    lines = README.read_text(encoding='utf-8').splitlines()
    assert len(lines) <= README_MAX_LINES, f'README.md has {len(lines)} lines'
    linked = {(REPO / t).resolve() for _, t in relative_targets('\n'.join(lines))}
    pages = sorted(DOCS.glob('*.md'))
    assert pages, 'docs/ has no pages'
    unlinked = [p.name for p in pages if p.resolve() not in linked]
    assert not unlinked, f'README.md does not link: {unlinked}'


def test_a_broken_link_is_found(tmp_path):
    # The same function on a planted file: each kind of broken link is reported, and the
    # links that resolve, the external ones, the anchors and the code are not.
    (tmp_path / 'there.md').write_text('# There\n')
    (tmp_path / 'img.png').write_bytes(b'')
    page = tmp_path / 'page.md'
    page.write_text('\n'.join([
        '# Page',
        'A good [link](there.md), one [with an anchor](there.md#section) and an ![image](img.png).',
        'A [missing page](nowhere.md) and a [missing anchor target](gone.md#top).',
        'A missing ![picture](pics/none.png).',
        'Out: [site](https://example.org/x.md), [mail](mailto:a@b.c), [anchor](#page).',
        'Code `[not a link](also_nowhere.md)` is skipped.',
        '```',
        '[in a fence](fenced_nowhere.md)',
        '```',
    ]) + '\n')
    assert broken_links(page) == ['page.md:3: nowhere.md', 'page.md:3: gone.md',
                                  'page.md:4: pics/none.png']
