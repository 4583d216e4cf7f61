"""Great Expectations' report templates are compiled once per process, and a template whose
source changed is compiled again."""

from __future__ import annotations

import jinja2
from great_expectations.render.view.view import DefaultJinjaView

from jstore.quality.report_templates import InMemoryBytecodeCache, compile_all


def test_after_compile_all_a_new_gx_view_compiles_no_template(monkeypatch):
    compile_all()
    compiled = []
    gx_compile = jinja2.Environment.compile

    def counting(env, source, name=None, *args, **kwargs):
        compiled.append(name)
        return gx_compile(env, source, name, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    env = DefaultJinjaView().env
    env.get_template("page.j2")
    env.get_template("index_page.j2")

    assert compiled == []


def test_a_changed_template_is_compiled_from_its_new_source():
    cache = InMemoryBytecodeCache()
    sources = {"page.j2": "first {{ x }}"}

    def render() -> str:
        env = jinja2.Environment(loader=jinja2.DictLoader(sources), bytecode_cache=cache)
        return env.get_template("page.j2").render(x=1)

    assert render() == "first 1"
    sources["page.j2"] = "second {{ x }}"
    assert render() == "second 1"
