"""Sphinx configuration of the hirl_mm documentation (`make docs`; Markdown via myst-parser)."""
import os.path as osp
import re

project = 'hirl_mm'
copyright = 'hirl_mm contributors'
author = 'hirl_mm contributors'
release = '0.1.0'

extensions = ['myst_parser', 'sphinx_copybutton']
source_suffix = {'.md': 'markdown'}
root_doc = 'index'
exclude_patterns = ['_build', '_generated']

myst_enable_extensions = ['deflist', 'colon_fence']
# Anchors for headings, so that links like page.md#a-heading resolve (as on GitHub).
myst_heading_anchors = 4

html_theme = 'sphinx_rtd_theme'
html_title = 'hirl_mm'
copybutton_prompt_text = r'\$ '
copybutton_prompt_is_regexp = True

# The model zoo page includes configs/hirl/README.md (one source, as mmpretrain keeps a
# README per algorithm). Its links to config files are relative to configs/hirl/ and are no
# pages of this site: the included copy shows them as repository paths instead.
HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))


def _repo_paths(readme: str, out: str) -> None:
    folder = osp.dirname(readme)
    with open(readme, encoding='utf-8') as f:
        text = f.read()

    def as_path(match: re.Match) -> str:
        target = match.group(2)
        if re.match(r'^[a-z][a-z0-9+.-]*:', target) or target.startswith('#'):
            return match.group(0)
        path = osp.relpath(osp.normpath(osp.join(folder, target)), REPO)
        return f'`{path}`'

    text = re.sub(r'\[([^\]]*)\]\(([^)\s]+)\)', as_path, text)
    with open(out, 'w', encoding='utf-8') as f:
        f.write(text)


_generated = osp.join(HERE, '_generated')
if not osp.isdir(_generated):
    import os
    os.makedirs(_generated)
_repo_paths(osp.join(REPO, 'configs', 'hirl', 'README.md'),
            osp.join(_generated, 'hirl_model_zoo.md'))
