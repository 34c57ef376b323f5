#!/usr/bin/env python3
"""Renders the chat-template fixtures with Python jinja2 — the oracle for ChatTemplateTests.

The environment is configured the way Hugging Face transformers' `apply_chat_template`
configures it (`_compile_jinja_template` in `transformers/utils/chat_template_utils.py`):
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]),
the `tojson` filter replaced by json.dumps with ensure_ascii=False, and the globals
`raise_exception` and `strftime_now`. The render call passes messages, tools, documents,
add_generation_prompt and the special tokens, as `render_jinja_template` does.

Writes, into ../Fixtures/chat-templates/:
  <family>.json        cases for each *.jinja template written for these tests
  smollm2.json         cases for SmolLM2's real template, read from the GGUF file
                       (the Swift test reads the template from the same file at run time)
  features.json        one mini template per Jinja feature, with jinja2's output or error
  negative.json        malformed templates (jinja2 must reject them too) and valid-but-unsupported ones
  property.json        random contents full of `{{`, `%}`, quotes, newlines, Unicode

Usage: pip install jinja2 gguf; python3 generate_chat_template_vectors.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]
"""

import json
import os
import random
import re
import sys
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Fixtures", "chat-templates")
ROOT = os.path.join(HERE, "..", "..", "..")


class RaisedByTemplate(jinja2.exceptions.TemplateError):
    """What raise_exception raises: a TemplateError, as in transformers."""


def raise_exception(message):
    raise RaisedByTemplate(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


class GenerationBlock(Extension):
    """transformers' AssistantTracker without the index tracking: `{% generation %}…{% endgeneration %}` renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlock, loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now


def tag(value):
    """Type-tagged JSON for TemplateValue, keeping int/float apart and object key order."""
    if value is None:
        return {"none": None}
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"int": value}
    if isinstance(value, float):
        return {"double": value}
    if isinstance(value, str):
        return {"string": value}
    if isinstance(value, list):
        return {"array": [tag(v) for v in value]}
    if isinstance(value, dict):
        return {"object": [[k, tag(v)] for k, v in value.items()]}
    raise TypeError(value)


def render(source, messages, add_generation_prompt, bos_token="", eos_token="", variables=None):
    """One case: the expected text, or the error jinja2 raised."""
    variables = dict(variables or {})
    tools = variables.pop("tools", None)
    documents = variables.pop("documents", None)
    kwargs = {"bos_token": bos_token, "eos_token": eos_token}
    kwargs.update(variables)
    case = {
        "messages": messages,
        "add_generation_prompt": add_generation_prompt,
        "bos_token": bos_token,
        "eos_token": eos_token,
        "variables": [[k, tag(v)] for k, v in (variables or {}).items()],
    }
    if tools is not None:
        case["variables"].append(["tools", tag(tools)])
    if documents is not None:
        case["variables"].append(["documents", tag(documents)])
    try:
        template = env.from_string(source)
        case["expected"] = template.render(
            messages=messages, tools=tools, documents=documents, add_generation_prompt=add_generation_prompt, **kwargs
        )
    except RaisedByTemplate as error:
        case["error"] = {"code": "templateRender", "raised": True, "message": str(error)}
    except (jinja2.exceptions.TemplateSyntaxError, SyntaxError) as error:
        case["error"] = {"code": "templateSyntax", "raised": False, "message": str(error)}
    except Exception as error:  # UndefinedError, TypeError, ZeroDivisionError …: jinja2 fails while rendering
        case["error"] = {"code": "templateRender", "raised": False, "message": f"{type(error).__name__}: {error}"}
    return case


# MARK: conversations

CONTENTS = [
    "Hello!",
    "What is 2 + 2?",
    "It is 4.",
    "  padded with spaces and a newline  \n",
    "",
    "Line one\nLine two\n\nLine four",
    "héllo wörld — 日本語 🎉 ñ Ω",
    "Looks like Jinja: {{ messages }} {% if true %}x{% endif %} {# c #}",
    "Braces {{ and }} and {% and %} and {#",
    "Quotes ' and \" and back\\slash",
    "Tabs\tand\r\nCRLF\rCR",
    "\u05e9\u05dc\u05d5\u05dd (RTL) e\u0301 (combining) \u2028 separator",
    "<|im_end|> looks like a control token",
    "trailing newline\n",
]


def conversations(rng, with_system, count):
    messages = []
    if with_system:
        messages.append({"role": "system", "content": rng.choice(["You are terse.", "  Be kind.\n", "Système: ünïcode"])})
    for i in range(count):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": rng.choice(CONTENTS)})
    return messages


def conversation_cases(source, bos="", eos="", extra_variables=()):
    rng = random.Random(20250101)
    cases = []
    for with_system in (False, True):
        for count in range(1, 7):
            for add_generation_prompt in (False, True):
                cases.append(render(source, conversations(rng, with_system, count), add_generation_prompt, bos, eos))
    # Every content string at least once, alone.
    for content in CONTENTS:
        cases.append(render(source, [{"role": "user", "content": content}], True, bos, eos))
    # Broken alternation, a leading assistant, an unknown role, a system message in the middle, no messages.
    cases.append(render(source, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], True, bos, eos))
    cases.append(render(source, [{"role": "assistant", "content": "first"}], False, bos, eos))
    cases.append(render(source, [{"role": "tool", "content": "{\"ok\": true}"}], True, bos, eos))
    cases.append(
        render(
            source,
            [{"role": "user", "content": "a"}, {"role": "system", "content": "late"}, {"role": "user", "content": "b"}],
            True,
            bos,
            eos,
        )
    )
    cases.append(render(source, [], True, bos, eos))
    for variables in extra_variables:
        cases.append(render(source, conversations(rng, True, 3), True, bos, eos, variables))
        cases.append(render(source, conversations(rng, False, 2), False, bos, eos, variables))
    return cases


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city — «quoted» text",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
                "required": ["city"],
            },
        },
    },
    {"type": "function", "function": {"name": "noop", "description": "", "parameters": {}, "strict": False, "score": 0.5}},
]

FAMILIES = {
    "chatml": ("", "", ()),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>", ({"date_string": "14 Mar 2025"}, {"tools": TOOLS})),
    "mistral": ("<s>", "</s>", ()),
    "gemma": ("<bos>", "<eos>", ()),
    "qwen2": ("", "<|im_end|>", ({"tools": TOOLS}, {"tools": []})),
    "zephyr": ("", "</s>", ()),
}


def write(name, payload):
    path = os.path.join(OUT, name + ".json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)}")


def families():
    for name, (bos, eos, extra) in FAMILIES.items():
        with open(os.path.join(OUT, name + ".jinja"), encoding="utf-8") as f:
            source = f.read()
        write(name, {"template": name + ".jinja", "cases": conversation_cases(source, bos, eos, extra)})


def smollm2(model_path):
    import gguf

    reader = gguf.GGUFReader(model_path)
    field = reader.fields["tokenizer.chat_template"]
    source = bytes(field.parts[field.data[0]]).decode("utf-8")
    write("smollm2", {"template": "tokenizer.chat_template of SmolLM2-135M-Instruct.Q4_1.gguf", "template_length": len(source),
                      "cases": conversation_cases(source, "<|im_start|>", "<|im_end|>")})


# MARK: feature-level mini templates

M2 = [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]

FEATURES = [
    # output, literals, operators
    ("{{ 'a' }}{{ \"b\" }}{{ 'c' 'd' }}{{ 1 }}{{ 1.5 }}{{ -3 }}{{ true }}{{ false }}{{ none }}{{ True }}{{ None }}", {}),
    ("{{ [1, 'a', none, true, 1.0] }}|{{ (1,) }}|{{ (1, 2) }}|{{ () }}|{{ {'k': 'v', 'n': [1]} }}|{{ {} }}", {}),
    ("{{ 'it\\'s' }}|{{ [\"it's\"] }}|{{ ['say \"hi\"'] }}|{{ ['both \\' \"'] }}|{{ ['tab\\tnl\\n'] }}|{{ ['\\x01é'] }}", {}),
    ("{{ '\\u00e9\\x41\\101\\q\\n\\t' }}|{{ 'a\\\nb' }}", {}),
    ("{{ 1 + 2 }} {{ 7 - 10 }} {{ 3 * 4 }} {{ 7 / 2 }} {{ 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }}", {}),
    ("{{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 1 + 2.5 }} {{ true + 1 }} {{ 10 / 4 * 2 }}", {}),
    ("{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 1e-5 }} {{ 0.0001 }} {{ 1/3 }} {{ 2.5e-4 }} {{ 123456789.125 }} {{ -0.0 }} {{ 1_000 }} {{ 3.0e2 }}", {}),
    ("{{ 'ab' + 'cd' }} {{ 'ab' * 3 }} {{ 2 * 'x' }} {{ [1] + [2, 3] }} {{ [0] * 3 }} {{ 'a' ~ 1 ~ none ~ 1.5 ~ true ~ [1] }} {{ 'x' * 0 }}|{{ 'x' * -1 }}|", {}),
    ("{{ 1 == 1.0 }} {{ 1 == true }} {{ 'a' == 'a' }} {{ [1, 2] == [1, 2] }} {{ (1,) == [1] }} {{ {'a': 1} == {'a': 1} }} {{ 1 != 2 }} {{ none == none }}", {}),
    ("{{ 1 < 2 }} {{ 2 <= 2 }} {{ 'a' < 'b' }} {{ 'B' < 'a' }} {{ [1, 2] < [1, 3] }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 2.5 >= 2 }}", {}),
    ("{{ 'a' in 'cat' }} {{ 'x' not in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'v' in {'k': 'v'} }} {{ '' in 'abc' }} {{ 1 in (1, 2) }}", {}),
    ("{{ true and 'yes' }}|{{ 0 and 'no' }}|{{ '' or 'fallback' }}|{{ 'first' or 'second' }}|{{ not 0 }}|{{ not 'a' }}|{{ not none }}", {}),
    ("{{ 'yes' if 1 else 'no' }}|{{ 'yes' if 0 else 'no' }}|{{ 'only' if false }}|{{ 'a' if false else 'b' if true else 'c' }}", {}),
    ("{{ x.a }}|{{ x['a'] }}|{{ x.b.c }}|{{ x['b']['c'] }}|{{ x.missing }}|{{ x['missing'] }}|{{ y[0] }}|{{ y[-1] }}|{{ y.0 }}|{{ y[10] }}|",
     {"x": {"a": 1, "b": {"c": "deep"}}, "y": [10, 20, 30]}),
    ("{{ s[0] }}{{ s[-1] }}|{{ s[1:3] }}|{{ s[::-1] }}|{{ s[:2] }}|{{ s[2:] }}|{{ s[-2:] }}|{{ s[::2] }}|{{ s[5:1:-1] }}|{{ s[100:] }}|",
     {"s": "héllo wörld"}),
    ("{{ y[1:] }}|{{ y[:-1] }}|{{ y[::-1] }}|{{ y[-100:100] }}|{{ y[1:2] }}|{{ y[3:0:-2] }}|{{ y[::3] }}", {"y": [1, 2, 3, 4, 5]}),
    ("{{ messages[0]['role'] }}|{{ messages[1:] | length }}|{{ messages[-1].content }}|{{ messages[0].role == 'system' }}", {"__messages": M2}),
    # whitespace control, trim_blocks, lstrip_blocks, comments, raw
    ("a\n  {% if true %}\n    yes\n  {% endif %}\nend\n", {}),
    ("  {{ 'kept' }}\n  {# comment #}\n  x {% if true %}inline{% endif %}\n\t{% if true %}tab{% endif %}", {}),
    ("a  {%- if true -%}  b  {%- endif -%}  c", {}),
    ("a  {{- 'b' -}}  c {{ 'd' -}}\n\n e {{- 'f' }}", {}),
    ("{%+ if true %}  x{% endif +%}\ny  {%+ if true %}z{% endif %}", {}),
    ("x {#- trimmed -#}  \n y {# kept #} z\n{# line #}\nw", {}),
    ("a\n  {% raw %}\n{{ not_rendered }} {% if %}\n  {% endraw %}\nb {%- raw -%}  r  {%- endraw -%}  c", {}),
    ("line1\r\nline2\rline3\n{% if true %}\r\nx\r\n{% endif %}\r\n", {}),
    ("trailing newline removed\n", {}),
    ("two trailing newlines\n\n", {}),
    ("{{ {'a': {'b': 1}}}}", {}),
    ("{{-1}}|{{- 2 -}}|{{ -3 }}", {}),
    # statements
    ("{% if 0 %}a{% elif '' %}b{% elif [1] %}c{% else %}d{% endif %}|{% if none %}x{% else %}y{% endif %}", {}),
    ("{% for i in [1, 2, 3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}", {}),
    ("{% for i in 'abc' %}{{ loop.previtem }}-{{ i }}-{{ loop.nextitem }}{{ loop.cycle('<', '>') }}{{ loop.depth }}{{ loop.depth0 }};{% endfor %}", {}),
    ("{% for i in [] %}x{% else %}empty{% endfor %}|{% for i in [1] %}x{% else %}empty{% endfor %}|{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}", {}),
    ("{% for m in messages if m.role != 'system' %}{{ loop.index }}/{{ loop.length }}:{{ m.content }} {% endfor %}", {"__messages": M2}),
    ("{% for a, b in [[1, 2], (3, 4), 'xy'] %}{{ a }}{{ b }},{% endfor %}|{% for k, v in x.items() %}{{ k }}={{ v }};{% endfor %}|{% for k, v in x|items %}{{ k }}{{ v }}{% endfor %}",
     {"x": {"z": 1, "a": [2]}}),
    ("{% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = x + 1 %}{{ x }}{% endfor %}{{ x }}", {}),
    ("{% for i in [1, 2] %}{% if i == 1 %}{% set y = 5 %}{% endif %}{{ y }}|{% endfor %}{{ y }}", {}),
    ("{% set ns = namespace(total=0, names=[]) %}{% for i in [1, 2, 3] %}{% set ns.total = ns.total + i %}{% set ns.names = ns.names + [i] %}{% endfor %}{{ ns.total }}{{ ns.names }}{{ ns.missing }}|{{ ns }}", {}),
    ("{% set a, b = 1, 2 %}{{ a }}{{ b }}|{% set t = 1, 2 %}{{ t }}|{% set block %}x{{ 1 + 1 }}y{% endset %}[{{ block }}]", {}),
    ("{% if true %}{% set inside = 'visible' %}{% endif %}{{ inside }}", {}),
    ("{% with a = 1, b = 'two' %}{{ a }}{{ b }}{% endwith %}[{{ a }}]", {}),
    ("{% macro greet(name, punct='!') %}Hello {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }} {{ greet('Bo', '?') }} {{ greet(punct='.', name='Cy') }} {{ greet() }}|", {}),
    ("{% macro outer() %}[{{ g }}{% set g = 'local' %}{{ g }}]{% endmacro %}{% set g = 'global' %}{{ outer() }}{{ g }}|{% macro r(n) %}{{ n }}{% if n > 0 %}{{ r(n - 1) }}{% endif %}{% endmacro %}{{ r(3) }}", {}),
    ("{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1) ~ m(2) }}{{ (m(3) + 'x') | upper }}", {}),
    ("{% print 'printed' %} {% generation %}gen {{ 1 }}{% endgeneration %}", {}),
    # filters
    ("[{{ '  x y  ' | trim }}][{{ 'xxhixx' | trim('x') }}][{{ u | trim }}][{{ 5 | trim }}]", {}),
    ("{{ 'abc' | length }} {{ [1, 2] | length }} {{ {'a': 1} | length }} {{ u | length }} {{ 'héllo' | count }} {{ 'e\u0301' | length }}", {}),
    ("{{ 'Hello World' | upper }} {{ 'Hello World' | lower }} {{ 'hello wORLD-foo(bar[baz<q' | title }} {{ 'hELLO world' | capitalize }} {{ 'straße' | upper }} {{ 'ΣΑΣ ΟΔΟΣ' | lower }}", {}),
    ("{{ u | default('d') }}|{{ none | default('d') }}|{{ '' | default('d') }}|{{ '' | default('d', true) }}|{{ 0 | d('zero', true) }}|{{ 'v' | d('x') }}|{{ u | default }}|", {}),
    ("{{ [1, 2, 3] | join }}|{{ ['a', 'b'] | join(', ') }}|{{ messages | join('/', attribute='role') }}|{{ u | join }}|{{ [none, 1.5, true] | join(' ') }}", {"__messages": M2}),
    ("{{ [3, 1] | first }} {{ [3, 1] | last }} {{ 'abc' | first }} {{ 'abc' | last }} {{ {'k': 1, 'j': 2} | first }} [{{ [] | first }}] [{{ u | first }}]", {}),
    ("{{ 'abc' | list }} {{ {'a': 1} | list }} {{ u | list }} {{ (1, 2) | list }} {{ range(3) | list }}", {}),
    ("{{ [1, 'x', none, true, 1.5, [2], {'k': 'v'}] | tojson }}|{{ 'héllo \"q\" \\\\ \\n \\t <>&' | tojson }}|{{ {'b': 1, 'a': 2} | tojson }}|{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}", {}),
    ("{{ x | tojson(indent=2) }}|{{ x | tojson(indent='\\t') }}|{{ [] | tojson(indent=2) }}|{{ x | tojson(separators=(',', ':')) }}|{{ 'ü🎉' | tojson(true) }}",
     {"x": {"name": "n", "list": [1, {"deep": None}], "empty": {}}}),
    ("{{ messages | tojson }}|{{ 1.0 | tojson }}|{{ 1e16 | tojson }}|{{ none | tojson }}|{{ '\\x00\\x1f\\x7f\\u2028' | tojson }}", {"__messages": M2}),
    ("{{ 1 | string }}{{ none | string }}{{ [1] | string }}{{ u | string }}|{{ '42' | int + 1 }} {{ '42.9' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ 3.99 | int }} {{ -3.99 | int }} {{ true | int }} {{ ' 1_000 ' | int }} {{ 'ff' | int(base=16) }} {{ none | int }}", {}),
    ("{{ '1.5' | float }} {{ 2 | float }} {{ 'x' | float }} {{ 'x' | float(1.5) }} {{ ' 1e3 ' | float }} {{ 'inf' | float }} {{ '-nan' | float }} {{ '1_0.5' | float }} {{ '0x10' | float }}", {}),
    ("{{ 'a-b-c' | replace('-', '+') }} {{ 'a-b-c' | replace('-', '', 1) }} {{ 'abc' | replace('', '.') }} {{ 5 | replace('5', 'five') }}", {}),
    ("{{ x | items | list }}|{{ u | items | list }}", {"x": {"b": 1, "a": 2}}),
    ("{{ x | dictsort }} {{ x | dictsort(reverse=true) }} {{ x | dictsort(by='value') }} {{ x | dictsort(true) }}{% for k, v in x | dictsort %}{{ k }}{% endfor %}",
     {"x": {"b": 1, "a": 3, "C": 2}}),
    ("{{ messages | selectattr('role', 'equalto', 'user') | list | length }} {{ messages | rejectattr('role', 'eq', 'system') | map(attribute='content') | join(',') }} {{ messages | selectattr('content') | list | length }}", {"__messages": M2}),
    ("{{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3, 4] | reject('even') | list }} {{ [0, 1, '', 'a'] | select | list }} {{ [1, 5, 10] | select('gt', 3) | list }} {{ [1, 2] | select('in', [2, 3]) | list }}", {}),
    ("{{ messages | map(attribute='role') | list }} {{ messages | map(attribute='nope', default='-') | list }} {{ ['a', 'B'] | map('upper') | list }} {{ [' a ', 'b '] | map('trim') | join }} {{ ['x'] | map('replace', 'x', 'y') | list }}", {"__messages": M2}),
    ("{{ [3, 1, 2] | reverse | list }} {{ 'abc' | reverse }} {{ (1, 2) | reverse | list }} {{ {'a': 1, 'b': 2} | reverse | list }}", {}),
    ("{{ '<b>' | safe }} {{ ('<b>' | safe) + '<i>' }} {{ '<i>' + ('<b>' | safe) }} {{ '<a href=\"x\">\\'' | escape }} {{ '<x>' | e }} {{ ('<b>' | safe) ~ '<i>' }} {{ '<b>' | safe | length }}", {}),
    ("{{ [1, 2, 2, 1, 3] | unique | list }} {{ ['a', 'A', 'b'] | unique | list }} {{ ['a', 'A'] | unique(case_sensitive=true) | list }} {{ messages | unique(attribute='role') | map(attribute='content') | list }}", {"__messages": M2}),
    ("{{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort }} {{ ['b', 'A', 'c'] | sort(case_sensitive=true) }} {{ [3, 1, 2] | sort(reverse=true) }} {{ messages | sort(attribute='role') | map(attribute='role') | list }} {{ [2, 1.5, true] | sort }}", {"__messages": M2}),
    ("{{ 'a\\nb\\n\\nc' | indent }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent(2, blank=true) }}|{{ 'a\\nb' | indent('> ') }}", {}),
    ("{{ -3 | abs }} {{ (-3) | abs }} {{ -2.5 | abs }} {{ true | abs }}", {}),
    # tests
    ("{{ u is defined }}{{ u is undefined }}{{ 1 is defined }}{{ none is defined }}{{ none is none }}{{ 0 is none }}{{ x.missing is defined }}{{ x.a is defined }}", {"x": {"a": 1}}),
    ("{{ 'a' is string }}{{ 1 is string }}{{ 1 is number }}{{ 1.5 is number }}{{ true is number }}{{ 1 is integer }}{{ true is integer }}{{ 1.0 is float }}{{ true is boolean }}{{ 1 is boolean }}", {}),
    ("{{ [] is iterable }}{{ 'a' is iterable }}{{ {} is iterable }}{{ 1 is iterable }}{{ u is iterable }}{{ {} is mapping }}{{ [] is mapping }}{{ [] is sequence }}{{ 'a' is sequence }}{{ {} is sequence }}{{ 1 is sequence }}", {}),
    ("{{ true is true }}{{ 1 is true }}{{ false is false }}{{ 0 is false }}{{ 2 is even }}{{ 3 is odd }}{{ 3 is even }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(4) }}{{ 2.0 is even }}", {}),
    ("{{ 1 is eq 1 }}{{ 1 is equalto 2 }}{{ 1 is ne 2 }}{{ 1 is lt 2 }}{{ 2 is le 2 }}{{ 3 is gt 2 }}{{ 2 is ge 3 }}{{ 'a' is in 'cat' }}{{ 2 is in [1, 2] }}{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ 'Abc' is lower }}", {}),
    ("{{ none is sameas none }}{{ true is sameas true }}{{ false is sameas 0 }}{{ m is callable }}{{ 'x' is callable }}{{ ('<b>' | safe) is escaped }}{{ 'x' is escaped }}{{ u is not defined }}{{ 1 is not none }}", {"__macro": True}),
    ("{% if tools is defined %}defined{% endif %}|{% if tools is none %}none{% endif %}|{% if tools %}truthy{% endif %}|{{ documents }}|{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}", {}),
    # methods
    ("[{{ '  x  '.strip() }}][{{ '  x  '.lstrip() }}][{{ '  x  '.rstrip() }}][{{ 'xxaxx'.strip('x') }}][{{ '\\u3000\\x1cx\\x85'.strip() }}]", {}),
    ("{{ 'abc'.startswith('a') }}{{ 'abc'.startswith(('x', 'a')) }}{{ 'abc'.endswith('bc') }}{{ 'abc'.endswith('') }}{{ 'abc'.startswith('abcd') }}", {}),
    ("{{ 'a,b,,c'.split(',') }} {{ '  a  b \\n c '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a b c'.split(maxsplit=1) }} {{ ''.split() }} {{ ''.split(',') }} {{ 'abc'.split('b') }}", {}),
    ("{{ 'Hello World'.upper() }} {{ 'Hello World'.lower() }} {{ 'hello wORLD-foo it\\'s'.title() }} {{ 'hELLO'.capitalize() }} {{ 'a-b-a'.replace('a', 'x') }} {{ 'a-b-a'.replace('a', 'x', 1) }}", {}),
    ("{{ ', '.join(['a', 'b']) }} {{ 'abcabc'.find('c') }} {{ 'abc'.find('z') }} {{ 'abcabc'.count('bc') }} {{ 'abc'.count('') }} {{ 'prefix-x'.removeprefix('prefix-') }} {{ 'x.txt'.removesuffix('.txt') }}", {}),
    ("{{ x.get('a') }} {{ x.get('z') }} {{ x.get('z', 'dflt') }} {{ x.keys() | list }} {{ x.values() | list }} {{ x.items() | list }} {{ x.items() }} {{ x.keys() }} {{ x.values() }}", {"x": {"a": 1, "b": [2]}}),
    ("{{ [1, 2, 1].count(1) }} {{ [1, 2, 1].index(2) }} {{ (1, 2).count(2) }}", {}),
    ("{% set d = dict(a=1, b='x') %}{{ d }} {{ range(3) }} {{ range(1, 7, 2) }} {{ range(3)[1] }} {{ range(10)[2:5] }} {{ range(3) | length }} {{ 2 in range(3) }}", {}),
    ("{{ strftime_now('%Y') | length }} {{ strftime_now('%d %b %Y') | length > 6 }}", {}),
    # undefined behaviour
    ("[{{ u }}][{{ u ~ 'x' }}][{{ u | upper }}][{{ u and 1 }}][{{ u or 1 }}][{{ not u }}][{{ u == u }}][{{ u != none }}][{{ 'x' in u }}][{% for i in u %}{{ i }}{% else %}none{% endfor %}]", {}),
    ("{{ u.attr }}", {}),
    ("{{ u['key'] }}", {}),
    ("{{ u + 1 }}", {}),
    ("{{ u() }}", {}),
    ("{{ u < 1 }}", {}),
    ("{{ -u }}", {}),
    ("{{ u | tojson }}", {}),
    ("{{ u | int }}", {}),
    ("{{ u | last }}", {}),
    ("{{ x.missing.deeper }}", {"x": {}}),
    # errors jinja2 raises while rendering
    ("{{ raise_exception('Custom message: ' ~ 42) }}", {}),
    ("{% if true %}{{ raise_exception('inside if') }}{% endif %}", {}),
    ("{{ 1 / 0 }}", {}),
    ("{{ 1 // 0 }}", {}),
    ("{{ 'a' + 1 }}", {}),
    ("{{ 'a' < 1 }}", {}),
    ("{{ 'a' - 'b' }}", {}),
    ("{% for x in 5 %}{% endfor %}", {}),
    ("{% set x = 5 %}{% set x.attr = 1 %}", {}),
    ("{% set a, b = [1, 2, 3] %}", {}),
    ("{{ [1, 2].append(3) }}", {}),
    ("{{ x.pop('a') }}", {"x": {"a": 1}}),
    ("{{ [1, 2] | select | length }}", {}),
    ("{{ 5 | length }}", {}),
    ("{{ 'a' in 5 }}", {}),
    ("{{ 1 in 'abc' }}", {}),
    ("{{ 'x'() }}", {}),
    ("{{ [1, 'a'] | sort }}", {}),
    ("{{ range(200000) | length }}", {}),
    ("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", {}),
    ("{{ ''.split('') }}", {}),
    ("{{ [1][::0] }}", {}),
]


def features():
    cases = []
    for source, variables in FEATURES:
        variables = dict(variables)
        messages = variables.pop("__messages", [])
        if variables.pop("__macro", False):
            source = "{% macro m() %}{% endmacro %}" + source
        case = render(source, messages, False, "", "", variables)
        case["template"] = source
        cases.append(case)
    write("features", {"cases": cases})


# MARK: negative cases

SYNTAX_ERRORS = [
    "{% if x %}no end",
    "{{ x ",
    "{{ }}",
    "{% %}",
    "{% endif %}",
    "{% for x in %}{% endfor %}",
    "{% for in y %}{% endfor %}",
    "{% if x %}{% else %}{% else %}{% endif %}",
    "{% if x %}{% endfor %}",
    "{{ 'unterminated }}",
    "{% set %}",
    "{% set x %}never closed",
    "{{ x | }}",
    "{{ (1 }}",
    "{{ [1, 2 }}",
    "{{ {'a' 1} }}",
    "{{ 1 + }}",
    "{{ x y }}",
    "{{ x.1.2.3.. }}",
    "{% break %}",
    "{% for x in y %}{% macro m() %}{% break %}{% endmacro %}{% endfor %}",
    "{% unknowntag %}",
    "{% do x %}",
    "{# never closed",
    "{% raw %}never closed",
    "{% macro m(a=1, b) %}{% endmacro %}",
    "{{ x is }}",
    "{{ 1 is defined is defined }}",
    "{% set true = 1 %}",
    "{{ f(a=1, 2) }}",
    "{{ 'a' ) }}",
    "{{ x ]}",
    "{% elif x %}",
    "{{ x @ y }}",
]

# Valid jinja2 that this interpreter refuses at parse time (jinja2 itself may also refuse unknown names).
UNSUPPORTED = [
    "{% include 'other.jinja' %}",
    "{% extends 'base.jinja' %}",
    "{% block body %}x{% endblock %}",
    "{% import 'macros.jinja' as m %}",
    "{% from 'macros.jinja' import m %}",
    "{% macro m() %}{{ caller() }}{% endmacro %}{% call m() %}x{% endcall %}",
    "{% filter upper %}x{% endfilter %}",
    "{% autoescape true %}x{% endautoescape %}",
    "{{ x | wordwrap(10) }}",
    "{{ x | no_such_filter }}",
    "{{ x | format(1) }}",
    "{{ x | batch(2) }}",
    "{{ x is no_such_test }}",
    "{{ '{}'.format(1) }}",
    "{{ 'a'.zfill(3) }}",
    "{{ 'a\\nb'.splitlines() }}",
    "{% for x in y recursive %}{{ loop(x) }}{% endfor %}",
    "{{ f(*args) }}",
    "{{ f(**kwargs) }}",
    "{% macro m() %}{{ varargs }}{% endmacro %}",
    "{% macro m(*a) %}{% endmacro %}",
    "{{ cycler(1, 2) }}",
    "{{ joiner(',') }}",
    "{% set x | upper %}a{% endset %}",
    "{{ 'x' | map('no_such_filter') }}",
    "{{ 99999999999999999999 }}",
    "{{ '\\N{BULLET}' }}",
]

# Valid jinja2 this interpreter can only refuse once it sees the values (jinja2's output is recorded).
UNSUPPORTED_AT_RENDER = [
    "{{ 2 ** 70 }}",
    "{{ 9223372036854775807 + 1 }}",
    "{{ '%s and %d' % ('a', 1) }}",
    "{{ [1, 2] | select }}",
    "{{ [1, 2] | reverse }}",
    "{% macro m() %}{% endmacro %}{{ m }}",
    "{{ 'abc'.__class__ }}",
    "{{ {1: 'int key'} }}",
    "{{ (1).real }}",
    "{{ ('<b>' | safe) | upper }}",
    "{{ [[1]] | map('select') | list }}",
    "{{ 5 | items }}",
    "{{ 'abc' | int(base=3) }}",
    "{{ loop }}{% for i in [1] %}{{ loop.changed(i) }}{% endfor %}",
]


def negative():
    syntax = []
    for source in SYNTAX_ERRORS:
        try:
            env.from_string(source)
        except (jinja2.exceptions.TemplateSyntaxError, SyntaxError) as error:  # `break` outside a loop is Python's SyntaxError
            syntax.append({"template": source, "jinja2": f"{type(error).__name__}: {error}"})
            continue
        raise SystemExit(f"jinja2 accepts {source!r}; it is not a syntax-error case")
    unsupported = []
    for source in UNSUPPORTED:
        try:
            env.from_string(source)
            verdict = "parses"
        except jinja2.exceptions.TemplateError as error:
            verdict = f"{type(error).__name__}: {error}"
        unsupported.append({"template": source, "jinja2": verdict})
    at_render = []
    for source in UNSUPPORTED_AT_RENDER:
        case = render(source, [], False)
        verdict = case.get("expected", case.get("error"))
        if isinstance(verdict, str):  # object addresses differ run to run
            verdict = re.sub(r"0x[0-9a-f]+", "0x…", verdict)
        at_render.append({"template": source, "jinja2": verdict})
    write("negative", {"syntax": syntax, "unsupported": unsupported, "unsupported_at_render": at_render})


# MARK: property-style cases

PIECES = ["{{", "}}", "{%", "%}", "{#", "#}", "{%-", "-%}", "'", '"', "\\", "\n", "\r\n", "\r", "\t", " ", "  ", "é", "日本",
          "🎉", "e\u0301", "\u2028", "\x01", "<|im_end|>", "raise_exception('x')", "messages", "a", "Z", "0", "-", "+", "{", "}",
          "%", "#", "|", "trim", "\u00a0", "\u3000"]

PROPERTY_TEMPLATES = [
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}</s>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
    "{%- for m in messages %}{{- '[' + m['role'] | upper + '] ' + m['content'] | trim + '\\n' }}{%- endfor %}",
    "{{ messages | tojson }}|{{ messages | map(attribute='content') | join('\\u2063') | length }}",
    "{% for m in messages %}{{ m.content.split() | join(' ') }}|{{ m.content.strip() }}|{{ m.content | title }}|{{ m.content.replace('{{', '<<') }}|{{ m.content | list | length }}|{{ m.content[1:-1] }}|{{ m.content | capitalize }}|{{ m.content | lower }}\n{% endfor %}",
]


def properties():
    rng = random.Random(424242)
    cases = []
    for index in range(240):
        source = PROPERTY_TEMPLATES[index % len(PROPERTY_TEMPLATES)]
        messages = []
        for i in range(rng.randint(1, 4)):
            content = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 14)))
            messages.append({"role": rng.choice(["user", "assistant", "system", "tool"]), "content": content})
        case = render(source, messages, rng.random() < 0.5)
        case["template_index"] = index % len(PROPERTY_TEMPLATES)
        cases.append(case)
    write("property", {"templates": PROPERTY_TEMPLATES, "cases": cases})


if __name__ == "__main__":
    model = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.environ.get("INFERENCEKIT_MODELS_DIR") or os.path.join(ROOT, ".cache", "models"), "SmolLM2-135M-Instruct.Q4_1.gguf")
    print(f"jinja2 {jinja2.__version__}")
    families()
    smollm2(model)
    features()
    negative()
    properties()
