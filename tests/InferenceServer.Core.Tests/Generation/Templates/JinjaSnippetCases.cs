namespace InferenceServer.Tests.Core.Generation.Templates;

/// <summary>
/// Small templates, each rendered by Jinja2 and by the engine with the same variables (<see cref="Variables"/>
/// unless a case brings its own): whitespace control, statements, scoping, expressions, filters, tests, methods,
/// Python printing, tojson and errors.
/// </summary>
public static class JinjaSnippetCases
{
    public const string Variables = """
        {
          "s": "Hello, World", "e": "", "ws": "  padded \n", "u": "héllo wörld 😀 日本", "q": "it's \"quoted\"\n\ttab\\",
          "n": 7, "z": 0, "neg": -7, "f": 2.5, "f0": 1.0, "big": 12345678901234567890.0, "tiny": 0.0001, "tinier": 0.00001,
          "t": true, "fa": false, "nul": null,
          "l": [3, 1, 2], "ls": ["b", "A", "c", "a"], "empty": [], "nested": [[1, 2], [3, [4, 5]]],
          "d": {"b": 1, "a": [1, 2.0, "x"], "c": {"z": null, "y": true}},
          "ed": {},
          "users": [{"name": "Ann", "age": 31, "role": "admin"}, {"name": "bob", "age": 25}, {"name": "Cy", "age": 40, "role": "user"}],
          "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nHello!"},
            {"role": "user", "content": "What's 2+2?"}
          ]
        }
        """;

    private static readonly (string Template, string? Variables)[] Raw =
    [
        // ---- whitespace: trim_blocks, lstrip_blocks, - and + markers, comments, raw ----
        ("a\n{% if t %}\nb\n{% endif %}\nc", null),
        ("a\n  {% if t %}\n  b\n  {% endif %}\nc", null),
        ("a  {% if t %}b{% endif %}  c", null),
        ("  {% if t %}x{% endif %}", null),
        ("\t {% if t %}x{% endif %}\n", null),
        ("a\n  {%+ if t %}b{% endif %}\n", null),
        ("a\n  {%- if t %}b{% endif %}\n", null),
        ("a\n  {% if t -%}\n\n  b{% endif %}\n", null),
        ("a\n  {% if t +%}\nb{% endif %}\n", null),
        ("a {{- s -}} b", null),
        ("a\n  {{ s }}\n  b", null),
        ("a\n  {{- s }}\n  b", null),
        ("a\n  {{ s -}}\n  b", null),
        ("a\n  {{+ s }}", null),
        ("a {# comment #} b", null),
        ("a\n  {# comment #}\nb", null),
        ("a\n  {#- comment -#}  \n b", null),
        ("a\n  {# comment +#}\nb", null),
        ("{# multi\nline #}x", null),
        ("x {% raw %}{{ not rendered }}{% endraw %} y", null),
        ("x\n  {% raw %}\n  {{ a }}\n  {% endraw %}\ny", null),
        ("x {%- raw -%}  {{ a }}  {%- endraw -%} y", null),
        ("{% for i in l %}\n  {{ i }}\n{% endfor %}\n", null),
        ("{% for i in l %}\n    {{- i }}\n{% endfor %}", null),
        ("{%- for i in l -%}\n  {{ i }},\n{%- endfor %}", null),
        ("line1\r\nline2\r\n{% if t %}\r\nx\r\n{% endif %}\r\n", null),
        ("trailing\n", null),
        ("trailing\n\n", null),
        ("{{ s }}\n", null),
        ("{% set x = 1 %}\n{{ x }}\n", null),
        ("{% if t %}  \nx{% endif %}", null),
        ("  {{ s }}{% if t %}\n  y{% endif %}", null),
        ("{{ s }}  {% if t %}x{% endif %}", null),
        ("{% if t %}a{% endif %}  {% if t %}b{% endif %}", null),
        ("{% if t %}a{% endif %}\n  {% if t %}b{% endif %}", null),
        ("{% generation %}\n  x\n{% endgeneration %}\nz", null),
        ("{{ '{{' }} {{ '}}' }} {{ {'a': {'b': 1}} }}", null),
        ("{{ '%}' }}{{ \"{%\" }}", null),

        // ---- if / elif / else ----
        ("{% if n > 5 %}big{% elif n > 2 %}mid{% else %}small{% endif %}", null),
        ("{% if z %}a{% elif e %}b{% else %}c{% endif %}", null),
        ("{% if nul is none %}none{% endif %}{% if missing is not defined %}undef{% endif %}", null),
        ("{% if l %}l{% endif %}{% if empty %}e{% endif %}{% if ed %}ed{% endif %}{% if d %}d{% endif %}", null),
        ("{% if not t %}x{% else %}y{% endif %}", null),

        // ---- for loops ----
        ("{% for i in l %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.length }}/{{ loop.first }}/{{ loop.last }} {% endfor %}", null),
        ("{% for i in l %}{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %}", null),
        ("{% for i in l %}{{ loop.cycle('odd', 'even') }}{% endfor %}", null),
        ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", null),
        ("{% for k in d %}{{ k }}{% endfor %}", null),
        ("{% for c in 'héllo' %}{{ c }}.{% endfor %}", null),
        ("{% for i in empty %}x{% else %}empty{% endfor %}", null),
        ("{% for i in l if i > 1 %}{{ i }}{{ loop.length }}{% endfor %}", null),
        ("{% for i in l %}{% if i == 1 %}{% break %}{% endif %}{{ i }}{% endfor %}", null),
        ("{% for i in l %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% endfor %}", null),
        ("{% for row in nested %}{% for x in row %}{{ loop.index }}{{ x }}{% endfor %}|{{ loop.index }}{% endfor %}", null),
        ("{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }}{% endfor %}", null),
        ("{% for i in range(3) %}{{ i }}{% endfor %}{% for i in range(1, 10, 3) %}{{ i }}{% endfor %}{% for i in range(5, 0, -2) %}{{ i }}{% endfor %}", null),
        ("{% for m in messages %}{{ m.role }}:{{ m['content'] | length }} {% endfor %}", null),
        ("{% for i in missing %}x{% else %}none{% endfor %}", null),
        ("{% for u in users | selectattr('role', 'defined') %}{{ u.name }}{% endfor %}", null),
        ("{% for x in l | sort %}{{ x }}{% endfor %}{% for x in l | reverse %}{{ x }}{% endfor %}", null),
        ("{% for i in [1,2,3] %}{{ loop.changed(i) if false else '' }}{{ loop.depth }}{% endfor %}", null),

        // ---- scoping, set, namespace ----
        ("{% set x = 1 %}{% for i in l %}{% set x = i %}{% endfor %}{{ x }}", null),
        ("{% for i in l %}[{{ x }}]{% set x = i %}[{{ x }}]{% endfor %}{{ x }}", null),
        ("{% set ns = namespace(found=false, n=0) %}{% for i in l %}{% if i == 2 %}{% set ns.found = true %}{% endif %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.found }} {{ ns.n }}", null),
        ("{% if t %}{% set y = 5 %}{% endif %}{{ y }}", null),
        ("{% for i in l %}{% endfor %}[{{ i }}]", null),
        ("{% set a, b = 1, 2 %}{{ a }}{{ b }}", null),
        ("{% set x = 1, 2 %}{{ x }}", null),
        ("{% set x %}block {{ n }}{% endset %}[{{ x }}]", null),
        ("{% set x | upper %}block {{ s }}{% endset %}[{{ x }}]", null),
        ("{% set ns = namespace() %}{% set ns.items = [] %}{{ ns.items }}", null),
        ("{% set n = n + 1 %}{{ n }}", null),
        ("{% set loop_messages = messages[1:] %}{{ loop_messages | length }}", null),

        // ---- macros and call ----
        ("{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', greeting='Hi') }} {{ greet('Cy', 'Yo') }}", null),
        ("{% macro render(m) -%}\n  <{{ m.role }}>{{ m.content }}\n{%- endmacro %}\n{% for m in messages %}{{ render(m) }}\n{% endfor %}", null),
        ("{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}inner {{ n }}{% endcall %}", null),
        ("{% macro f(x) %}{{ x * 2 }}{% endmacro %}{{ f(n) | int + 1 }}", null),
        ("{% filter upper %}shout {{ s }}{% endfilter %}", null),

        // ---- expressions and operators ----
        ("{{ 1 + 2 }} {{ 7 - 10 }} {{ 2 * 3 }} {{ 7 / 2 }} {{ 6 / 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }}", null),
        ("{{ 1 + 2.5 }} {{ 7.5 // 2 }} {{ 7.5 % 2 }} {{ 0.1 + 0.2 }} {{ 1e3 }} {{ 1.5e-7 }} {{ 10 / 4 }} {{ 1 == 1.0 }} {{ true == 1 }}", null),
        ("{{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ (1 + 2) * 3 }} {{ 1 + 2 * 3 }} {{ 10 - 2 - 3 }}", null),
        ("{{ 'a' + 'b' }} {{ 'a' ~ 1 ~ none ~ true }} {{ [1] + [2, 3] }} {{ 'ab' * 3 }} {{ [0] * 3 }}", null),
        ("{{ 1 < 2 < 3 }} {{ 1 < 2 > 3 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 'B' < 'a' }} {{ n >= 7 }} {{ n != 7 }}", null),
        ("{{ 'ell' in s }} {{ 'x' not in s }} {{ 2 in l }} {{ 'a' in d }} {{ 'z' in d }} {{ 1.0 in l }}", null),
        ("{{ t and 'yes' }} {{ fa and 'yes' }} {{ fa or 'no' }} {{ n or 0 }} {{ e or 'empty' }} {{ not n }} {{ nul or 'x' }}", null),
        ("{{ 'y' if t else 'n' }} {{ 'y' if fa else 'n' }} [{{ 'y' if fa }}] {{ 1 if fa else 2 if t else 3 }}", null),
        ("{{ -n }} {{ +n }} {{ - f }} {{ not nul }} {{ (1, 2) }} {{ (1,) }} {{ () }} {{ [] }} {{ {} }}", null),
        ("{{ 'it''s' }} {{ \"a\" 'b' }} {{ 'tab\\tnew\\nline' }} {{ 'q\\'s' }} {{ \"d\\\"q\" }} {{ '\\u00e9\\x41' }} {{ 'back\\\\slash' }}", null),
        ("{{ true }} {{ True }} {{ false }} {{ none }} {{ None }} {{ nul }}", null),
        ("{{ 1_000 }} {{ 0.5 }} {{ 10.0 }} {{ 1e16 }} {{ 1e15 }} {{ big }} {{ tiny }} {{ tinier }} {{ 123.456 }} {{ -0.0 }} {{ 100.0 / 3 }}", null),
        ("{{ n ~ '' }}{{ f ~ '' }}{{ f0 }}", null),

        // ---- printing Python values ----
        ("{{ l }} {{ ls }} {{ d }} {{ nested }} {{ users[0] }}", null),
        ("{{ q }}|{{ [q] }}|{{ {'k': q} }}", null),
        ("{{ ['a\\'b', \"c\\\"d\", 'both\\'\"', 'plain'] }}", null),
        ("{{ [none, true, false, 1.0, 0.1, -3] }} {{ (1, 'a', none) }}", null),
        ("{{ [u] }} {{ ['\\x00\\x1f\\x7f', '\\u00a0', '\\u2028'] }}", null),
        ("{{ d.items() | list }} {{ d.keys() | list }} {{ d.values() | list }}", null),

        // ---- attribute, subscript, slicing ----
        ("{{ d.b }} {{ d['b'] }} {{ d.a[1] }} {{ d.a.2 }} {{ d.c.y }} {{ d['c']['z'] }} [{{ d.nope }}] [{{ d['nope'] }}]", null),
        ("{{ l[0] }} {{ l[-1] }} [{{ l[10] }}] {{ s[0] }} {{ s[-1] }} {{ u[-4] }} {{ u[12] }}", null),
        ("{{ l[1:] }} {{ l[:2] }} {{ l[::-1] }} {{ l[::2] }} {{ l[-2:] }} {{ l[5:] }} {{ l[1:-1] }} {{ l[-100:100] }}", null),
        ("{{ s[:5] }}|{{ s[7:] }}|{{ s[::-1] }}|{{ s[-5:-1] }}|{{ u[::-1] }}|{{ u[6:12] }}|{{ s[1:10:3] }}", null),
        ("{{ messages[-1].content }} {{ messages[0]['role'] }} {{ (messages | last).role }}", null),
        ("{{ d.get('b') }} {{ d.get('zz') }} {{ d.get('zz', 'dflt') }} {{ ed.get('x', 0) }}", null),
        ("{{ users[1].role is defined }} {{ users[0].role is defined }} {{ users | map(attribute='name') | join(', ') }}", null),

        // ---- string methods ----
        ("[{{ ws.strip() }}][{{ ws.lstrip() }}][{{ ws.rstrip() }}][{{ 'xxhixx'.strip('x') }}][{{ '\\n\\nhi\\n'.lstrip('\\n') }}][{{ 'abcba'.rstrip('ab') }}]", null),
        ("{{ s.split(', ') }} {{ 'a b  c '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ '  a  b '.split(none, 1) }} {{ ''.split(',') }} {{ ''.split() }}", null),
        ("{{ s.startswith('Hell') }} {{ s.endswith('World') }} {{ s.startswith(('x', 'He')) }} {{ s.endswith(('x', 'y')) }}", null),
        ("{{ s.upper() }} {{ s.lower() }} {{ 'hello wORLD it\\'s'.title() }} {{ 'hELLO'.capitalize() }} {{ s.replace('l', 'L') }} {{ s.replace('l', 'L', 2) }}", null),
        ("{{ s.find('o') }} {{ s.rfind('o') }} {{ s.find('zz') }} {{ s.count('l') }} {{ u.find('日') }} {{ s.index('W') }}", null),
        ("{{ '-'.join(['a', 'b']) }} {{ ''.join(ls) }} {{ '{} and {}'.format('x', 1) }} {{ '{0}{1}{0}'.format('a', 'b') }} {{ '{name}!'.format(name='N') }}", null),
        ("{{ 'a\\nb\\r\\nc'.splitlines() }} {{ '123'.isdigit() }} {{ '12a'.isdigit() }} {{ 'abc'.isalpha() }} {{ '  '.isspace() }} {{ ''.isspace() }}", null),
        ("{{ 'prefix_x'.removeprefix('prefix_') }} {{ 'x.json'.removesuffix('.json') }} {{ 'abc'.islower() }} {{ 'ABC'.isupper() }}", null),
        ("{{ messages[2].content.split('</think>')[-1].lstrip('\\n') }}|{{ messages[2].content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}", null),
        ("{{ 'x'.zfill(3) }} {{ 'ab'.center(6, '*') }} {{ 'ab'.ljust(4, '.') }}| {{ 'a=b'.partition('=') }}", null),

        // ---- dict and list methods ----
        ("{{ d.items() | map('first') | list }} {{ l.index(2) }} {{ l.count(3) }} {{ ls.index('c') }}", null),

        // ---- filters ----
        ("{{ l | length }} {{ s | length }} {{ u | length }} {{ d | length }} {{ l | count }} {{ missing | length }}", null),
        ("{{ l | first }} {{ l | last }} {{ s | first }} {{ s | last }} [{{ empty | first }}]", null),
        ("{{ l | join }} {{ l | join('-') }} {{ users | join(', ', attribute='name') }} {{ ls | join(d=',') }}", null),
        ("{{ users | map(attribute='age') | list }} {{ users | map(attribute='role', default='none') | list }} {{ ls | map('upper') | list }} {{ l | map('string') | join }}", null),
        ("{{ l | select('odd') | list }} {{ l | reject('odd') | list }} {{ l | select('equalto', 2) | list }} {{ l | select('==', 3) | list }} {{ l | select | list }} {{ [0, 1, '', 'a', none] | select | list }}", null),
        ("{{ users | selectattr('role') | map(attribute='name') | list }} {{ users | rejectattr('role') | map(attribute='name') | list }} {{ users | selectattr('role', 'equalto', 'admin') | list | length }} {{ users | selectattr('age', 'gt', 30) | map(attribute='name') | join }}", null),
        ("{{ messages | selectattr('role', 'in', ['user', 'system']) | list | length }} {{ users | selectattr('role', 'undefined') | list | length }} {{ [1, 'a', none] | select('string') | list }} {{ [1, 'a', none, 2.5] | select('number') | list }}", null),
        ("{{ [none, 1] | select('none') | list }} {{ [d, l, s] | select('mapping') | list | length }} {{ [d, l, s, n] | select('iterable') | list | length }} {{ [t, fa, 1] | select('true') | list }} {{ [t, fa, 0] | select('false') | list }}", null),
        ("{{ s | list }} {{ d | list }} {{ 'é😀' | list }} {{ (1, 2) | list }}", null),
        ("{{ n | string }} {{ l | string }} {{ nul | string }} {{ '42' | int }} {{ '4.7' | int }} {{ 'x' | int }} {{ 'x' | int(5) }} {{ 3.9 | int }} {{ '0x1A' | int(base=16) }} {{ ' 12 ' | int }}", null),
        ("{{ '2.5' | float }} {{ 3 | float }} {{ 'x' | float }} {{ 'x' | float(1.5) }} {{ '1e3' | float }}", null),
        ("{{ s | lower }} {{ s | upper }} {{ 'hello wORLD-x (y)z' | title }} {{ 'hELLO World' | capitalize }} {{ s | replace('o', '0') }} {{ s | replace('o', '0', 1) }}", null),
        ("[{{ ws | trim }}] [{{ 'xxhixx' | trim('x') }}] [{{ missing | trim }}] [{{ missing | upper }}]", null),
        ("{{ missing | default('dflt') }} {{ nul | default('dflt') }} {{ e | default('dflt') }} {{ e | default('dflt', true) }} {{ fa | d('x', boolean=true) }} {{ n | default(0) }} {{ missing | d }}", null),
        ("{{ d | items | list }} {{ d | dictsort }} {{ {'b': 1, 'A': 2, 'a': 3} | dictsort }} {{ {'b': 1, 'A': 2, 'a': 3} | dictsort(true) }} {{ {'x': 2, 'y': 1} | dictsort(by='value') }} {{ {'x': 2, 'y': 1} | dictsort(reverse=true) }}", null),
        ("{{ [3, 1, 3, 2, 1] | unique | list }} {{ ['a', 'A', 'b'] | unique | list }} {{ ['a', 'A', 'b'] | unique(case_sensitive=true) | list }} {{ users | unique(attribute='role') | map(attribute='name') | list }}", null),
        ("{{ l | sort }} {{ l | sort(reverse=true) }} {{ ls | sort }} {{ ls | sort(case_sensitive=true) }} {{ users | sort(attribute='age') | map(attribute='name') | list }} {{ users | sort(attribute='name') | map(attribute='name') | list }}", null),
        ("{{ l | reverse | list }} {{ s | reverse }} {{ u | reverse }}", null),
        ("{{ 2.567 | round }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.567 | round(1, 'floor') }} {{ 2.512 | round(1, 'ceil') }} {{ 3 | round }} {{ -2.5 | abs }} {{ -3 | abs }}", null),
        ("{{ 'a\\nb\\n\\nc' | indent }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent(2, blank=true) }}|{{ 'a\\nb' | indent('> ') }}|{{ '' | indent(first=true) }}", null),
        ("{{ 'one two, three' | wordcount }} {{ '<b>&\"\\'' | e }} {{ '<b>' | escape }} {{ '<b>' | safe }}", null),
        ("{{ l | sum }} {{ users | sum(attribute='age') }} {{ l | min }} {{ l | max }} {{ ls | min }} {{ users | max(attribute='age') | attr('name') if false else (users | max(attribute='age')).name }}", null),
        ("{{ '%s is %d years, %.2f%%' | format('Ann', 31, 2.5) }} {{ '%s-%s' % ('a', 'b') }} {{ '%05.1f|%-4d|%x' % (3.14159, 7, 255) }} {{ 'v=%r' % 'x' }}", null),
        ("{{ l | batch(2) | list }} {{ 'abc' | center(9) }}", null),

        // ---- tojson ----
        ("{{ d | tojson }}", null),
        ("{{ d | tojson(indent=2) }}", null),
        ("{{ d | tojson(indent=4, sort_keys=true) }}", null),
        ("{{ d | tojson(separators=(',', ':')) }}", null),
        ("{{ users | tojson }} {{ [] | tojson(indent=2) }} {{ {} | tojson(indent=2) }} {{ [[]] | tojson(indent=1) }}", null),
        ("{{ u | tojson }} {{ q | tojson }} {{ '<script>&' | tojson }} {{ '\\x01\\x1f\\x7f\\u2028' | tojson }}", null),
        ("{{ u | tojson(ensure_ascii=true) }}", null),
        ("{{ [1, 1.0, 0.1, 1e16, 1e-7, -0.0, none, true, false] | tojson }} {{ big | tojson }}", null),
        ("{{ {1: 'a', 2.5: 'b', true: 'c', none: 'd'} | tojson }}", null),
        ("{{ (1, 'a') | tojson }} {{ 'x' | tojson }} {{ 5 | tojson }} {{ nul | tojson }}", null),
        ("{{ {'b': 1, 'a': {'d': 1, 'c': 2}} | tojson(sort_keys=true) }} {{ d | tojson(indent='\\t') }}", null),

        // ---- tests ----
        ("{{ n is defined }} {{ missing is defined }} {{ missing is undefined }} {{ nul is none }} {{ n is none }} {{ missing is none }}", null),
        ("{{ s is string }} {{ n is string }} {{ n is number }} {{ f is number }} {{ t is number }} {{ s is number }} {{ n is integer }} {{ f is integer }} {{ t is integer }} {{ f is float }} {{ n is float }}", null),
        ("{{ d is mapping }} {{ l is mapping }} {{ l is sequence }} {{ s is sequence }} {{ d is sequence }} {{ n is sequence }} {{ l is iterable }} {{ s is iterable }} {{ n is iterable }} {{ missing is iterable }}", null),
        ("{{ t is boolean }} {{ n is boolean }} {{ t is true }} {{ 1 is true }} {{ fa is false }} {{ 0 is false }} {{ nul is false }}", null),
        ("{{ n is odd }} {{ n is even }} {{ 8 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(2) }} {{ n is equalto 7 }} {{ n is eq 7 }} {{ n is ne 7 }} {{ n is gt 3 }} {{ n is lt 3 }} {{ n is ge 7 }} {{ n is le 6 }}", null),
        ("{{ 2 is in l }} {{ 'a' is in 'abc' }} {{ s is lower }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ range is callable }} {{ s is callable }} {{ n is not odd }}", null),
        ("{{ not missing is defined }} {{ missing is not defined and t }} {{ n is number and n > 3 }} {{ 'upper' is filter }} {{ 'odd' is test }} {{ nul is sameas none }}", null),

        // ---- globals ----
        ("{{ range(3) | list }} {{ range(2, 5) | list }} {{ range(10, 0, -3) | list }} {{ range(0) | list }}", null),
        ("{{ dict(a=1, b='x') }} {{ namespace(a=1).a }}", null),
        ("{{ strftime_now('%d %b %Y') }} {{ strftime_now('%Y-%m-%d %H:%M:%S') }} {{ strftime_now('%A %B %-d %I%p %j') }}", null),
        ("{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{{ c.next() }} {% set j = joiner('|') %}{% for i in l %}{{ j() }}{{ i }}{% endfor %}", null),

        // ---- Undefined semantics and errors ----
        ("[{{ missing }}] [{{ missing ~ 'x' }}] [{{ missing | string }}] [{{ missing | list }}] [{{ d.nope }}] [{{ nul.attr }}]", null),
        ("{{ missing.attr }}", null),
        ("{{ missing['key'] }}", null),
        ("{{ d.nope.deeper }}", null),
        ("{{ missing + 1 }}", null),
        ("{{ missing() }}", null),
        ("{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}", null),
        ("{% if messages[1].role != 'assistant' %}{{ raise_exception('Bad role: ' + messages[1].role) }}{% endif %}", null),
        ("before {{ raise_exception('mid-render') }} after", null),
        ("{{ l.append(4) }}", null),
        ("{{ d.update({'x': 1}) }}", null),
        ("{{ d.pop('a') }}", null),
        ("{{ 'a' + 1 }}", null),
        ("{{ 1 + 'a' }}", null),
        ("{{ 1 / 0 }}", null),
        ("{{ 1 // 0 }}", null),
        ("{{ 1 < 'a' }}", null),
        ("{{ 'a' in 1 }}", null),
        ("{{ 1 in 'abc' }}", null),
        ("{{ n | tojson(indent=2) }} {{ missing | tojson }}", null),
        ("{{ nul | length }}", null),
        ("{% for x in nul %}{% endfor %}", null),
        ("{% for a, b in l %}{% endfor %}", null),
        ("{{ l | unknownfilter }}", null),
        ("{{ n is unknowntest }}", null),
        ("{{ range(1000000) | length }}", null),
        ("{% set x = 1 %}{% set x.y = 2 %}", null),

        // ---- syntax errors ----
        ("{% if t %}unclosed", null),
        ("{% for x in l %}unclosed", null),
        ("{{ 1 + }}", null),
        ("{% endif %}", null),
        ("{{ (1, 2 }}", null),
        ("{% unknowntag %}", null),
        ("{{ 'unterminated }}", null),
        ("{# unterminated comment", null),
        ("{% if t %}{% else %}{% elif fa %}{% endif %}", null),

        // ---- variables of other shapes ----
        ("{{ x }} {{ x | tojson }} {{ x.k }}", """{"x": {"k": [1, {"deep": "ü"}], "n": -0.5, "i": 9007199254740993}}"""),
        ("{{ x }} {{ x | tojson }}", """{"x": [1e400, 1E2, -0, 0.000001, 123456789012345678]}"""),
        ("{% for m in msgs %}{{ m.content if m.content is string else m.content | map(attribute='text') | join }}{% endfor %}", """{"msgs": [{"content": "plain"}, {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}"""),
    ];


    private static readonly (string Template, string? Variables)[] More =
    [
        // ---- more whitespace combinations ----
        ("{{- s }}\n  {%- if t -%}  \n  x  \n  {%- endif -%}  \n  y", null),
        ("a\n\n  {%- if t %}\n\n  b\n\n  {% endif -%}\n\nc", null),
        ("{% if t %}\n\n{% endif %}\n\nz", null),
        ("a\n\t\t{% if t %}\n\t\tb\n\t\t{% endif %}\n", null),
        ("a\u00a0\u3000{% if t %}b{% endif %}\n\u00a0{% if t %}c{% endif %}", null),
        ("x {%+ if t -%}  y  {%- endif +%}\n z", null),
        ("{{ s }}\n    {% if t %}x{% endif %}", null),
        ("{{ s }}    {% if t %}x{% endif %}", null),
        ("{% if t %}{% endif %}    {% if t %}x{% endif %}", null),
        ("{% if t %}{% endif %}\n    {% if t %}x{% endif %}", null),
        ("{# c #}    {% if t %}x{% endif %}", null),
        ("{# c #}\n    {% if t %}x{% endif %}", null),
        ("{% for i in l %}\n  {% if i > 1 %}\n    {{ i }}\n  {% endif %}\n{% endfor %}", null),
        ("{% for i in l %}{{ i }}\n{% endfor %}", null),
        ("{% for i in l -%}\n    {{ i }}\n{%- endfor %}", null),
        ("<{% for i in l %} {{ i }} {% endfor %}>", null),
        ("{% raw -%}\n  {{ x }}\n  {%- endraw %}", null),
        ("{% set x -%}\n   padded\n{%- endset %}[{{ x }}]", null),
        ("{%- macro m() -%}\n  body\n{%- endmacro -%}\n[{{ m() }}]", null),
        ("{% macro m() %}\n  body\n{% endmacro %}\n[{{ m() }}]", null),
        ("{{ 'a' }}{# c -#}\n\n{{ 'b' }}", null),
        ("{{\n  s\n  | upper\n}}", null),
        ("{%\n  if\n  t\n%}yes{%\nendif\n%}", null),
        ("{{ {'a': 1}['a'] }}{{ {'k': {'j': 2}}.k.j }}", null),

        // ---- loops, loop helpers, recursion ----
        ("{% for i in [1, 1, 2, 3, 3] %}{% if loop.changed(i) %}{{ i }}{% endif %}{% endfor %}", null),
        ("{% for x in tree recursive %}{{ x.name }}{% if x.children %}({{ loop(x.children) }}){% endif %}{{ loop.depth }};{% endfor %}", """{"tree": [{"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}, {"name": "d"}]}, {"name": "e"}]}"""),
        ("{% for i in l %}{{ loop.index }}{% for j in l %}{{ loop.index }}{% endfor %}.{% endfor %}", null),
        ("{% for i in l %}{% set outer = loop %}{% for j in [0] %}{{ outer.index }}{{ loop.index }}{% endfor %}{% endfor %}", null),
        ("{% for i in l if i != 3 %}{{ loop.index }}{{ loop.last }}{{ loop.revindex }}{% endfor %}", null),
        ("{% for i in l %}{{ loop.cycle(*['a', 'b']) if false else loop.cycle('a', 'b', 'c') }}{% endfor %}", null),
        ("{% for m in messages %}{% if loop.first and m.role == 'system' %}[S]{% endif %}{% if not loop.last %}{{ m.role[0] }},{% else %}{{ m.role }}{% endif %}{% endfor %}", null),
        ("{% for k, v in d | dictsort %}{{ k }}{% endfor %} {{ d | dictsort | first }}", null),
        ("{% for a, (b, c) in [(1, (2, 3))] %}{{ a }}{{ b }}{{ c }}{% endfor %}", null),
        ("{% for i in range(3) %}{% for j in range(3) %}{% if j == 1 %}{% break %}{% endif %}{{ i }}{{ j }} {% endfor %}{% endfor %}", null),
        ("{% for i in l %}{% if loop.index is even %}{% continue %}{% endif %}{{ i }}{% else %}never{% endfor %}", null),

        // ---- scoping in depth ----
        ("{% macro m() %}{{ x }}{% endmacro %}{% set x = 5 %}{{ m() }}", null),
        ("{% macro m() %}{% set x = 9 %}{{ x }}{% endmacro %}{% set x = 5 %}{{ m() }}{{ x }}", null),
        ("{% set ns = namespace(c=0) %}{% for i in l %}{% for j in l %}{% set ns.c = ns.c + 1 %}{% endfor %}{% endfor %}{{ ns.c }}", null),
        ("{% set ns = namespace(c=0) %}{% macro bump() %}{% set ns.c = ns.c + 10 %}{% endmacro %}{{ bump() }}{{ bump() }}{{ ns.c }}", null),
        ("{% set x = 1 %}{% for i in l %}{% set x = x + i %}{{ x }},{% endfor %}{{ x }}", null),
        ("{% set messages = messages[1:] %}{{ messages | length }}{% for m in messages %}{{ m.role[0] }}{% endfor %}", null),
        ("{% if not tools is defined %}{% set tools = none %}{% endif %}{{ tools is none }}", null),
        ("{% set d2 = dict(d, extra=1) %}{{ d2 | list }} {{ d | list }}", null),

        // ---- macros ----
        ("{% macro m(a, b=2, c='x') %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ m(1) }} {{ m(1, c='z') }} {{ m(a=0, b=1) }}", null),
        ("{% macro list_items(items) %}{% for i in items %}<{{ caller(i) }}>{% endfor %}{% endmacro %}{% call(item) list_items(l) %}{{ item * 10 }}{% endcall %}", null),
        ("{% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}", null),
        ("{% macro outer(x) %}{% macro inner(y) %}{{ y }}!{% endmacro %}{{ inner(x) }}{% endmacro %}{{ outer('hi') }}", null),
        ("{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1) | int }}{% endif %}{% endmacro %}{{ fact(5) }}", null),

        // ---- expressions, precedence, Python semantics ----
        ("{{ -1 | abs }} {{ - l | length }} {{ not true == false }} {{ not 1 in l }} {{ messages | length - 1 }} {{ 2 * l | length }}", null),
        ("{{ 'a' if 'b' in 'abc' and 1 else 'c' }} {{ 1 or missing.x }} {{ 0 and missing.x }} {{ missing is defined and missing.x }}", null),
        ("{{ none == none }} {{ [1, 2] == [1, 2] }} {{ (1, 2) == [1, 2] }} {{ {'a': 1} == {'a': 1.0} }} {{ 1 == '1' }} {{ missing == missing }} {{ nul == missing }} {{ 'a' != 'a' }}", null),
        ("{{ l[2:0:-1] }} {{ l[-1:-4:-1] }} {{ s[::-2] }} {{ l[:-1] }} {{ l[-1:] }} {{ s[100:] }} {{ (1, 2, 3)[1:] }}", null),
        ("{{ -7.5 // 2 }} {{ -7 % -3 }} {{ 7 % -3 }} {{ 7.0 % -3 }} {{ 2 ** 0.5 }} {{ 4 ** 0.5 }} {{ 10 // 3 * 3 }} {{ 2 ** 62 }} {{ 0 ** 0 }}", null),
        ("{{ 1e22 }} {{ 5e-324 }} {{ 1.7976931348623157e308 }} {{ 0.1 * 3 }} {{ 1 / 3 }} {{ 2 / 3 }} {{ 100.0 }} {{ 123456789.0 }} {{ 1234567890123456.0 }} {{ -1.5e-10 }} {{ 0.000123 }}", null),
        ("{{ 'ab' * -1 }}|{{ [1] * 0 }}|{{ (1, 2) + (3,) }}|{{ ['a', none] | join }}|{{ 'x' ~ 1.0 }}|{{ 'x' ~ [1] }}", null),
        ("{{ '%s' % none }} {{ '%s and %s' % (1, [2]) }} {{ '%-5s|' % 'ab' }} {{ '%5.1f' % 3.14159 }} {{ '%03d' % 7 }} {{ '%(a)s-%(b)s' % {'a': 1, 'b': 2} }}", null),
        ("{{ '{:>5}'.format('a') }}|{{ '{:.2f}'.format(3.14159) }}|{{ '{:05d}'.format(42) }}|{{ '{:^7}'.format('mid') }}|{{ '{{}} {}'.format(1) }}|{{ '{0.role}'.format(messages[0]) if false else '' }}", null),
        ("{{ l['a'] }}|{{ s.nonexistent }}|{{ 'abc'[1] }}|{{ 'abc'[5] }}|{{ range(3)[1] }}|{{ nul['x'] }}", null),
        ("{{ s.nonexistent() }}", null),
        ("{{ s + missing }}", null),
        ("{{ '%s %s' % ('a',) }}", null),
        ("{{ {'a': 1, 'a': 2} }} {{ {'x': 1, 'y': 2}.items() | list }} {{ {1: 'one'}[1] }} {{ {1: 'one'}[1.0] }} {{ {none: 1}[none] }}", null),
        ("{{ 2 in (1, 2) }} {{ 'b' in ['a', 'b'] }} {{ 'a' in {'a': 1} }} {{ [1] in [[1], 2] }} {{ '' in 'abc' }}", null),
        ("{{ missing is string }} {{ missing is mapping }} {{ missing is number }} {{ missing is sequence }} {{ missing is none }}", null),

        // ---- filters, more ----
        ("{{ missing | join }}|{{ missing | map('upper') | list }}|{{ missing | default(none) is none }}|{{ missing | list | length }}|{{ missing | first is defined }}", null),
        ("{{ l | map('int') | sum }} {{ ['1', '2'] | map('int') | list }} {{ messages | map(attribute='role') | unique | list }} {{ l | select('in', [1, 2]) | list }}", null),
        ("{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | last }} {{ messages | rejectattr('role', 'in', ['user']) | map(attribute='role') | join(',') }}", null),
        ("{{ users | map(attribute='name') | map('lower') | map('capitalize') | join(' ') }} {{ users | sort(attribute='role,name') | map(attribute='name') | list }}", null),
        ("{{ [[3, 'c'], [1, 'a']] | sort | list }} {{ [[3, 'c'], [1, 'a']] | map('first') | list }} {{ users | map(attribute='age') | max }} {{ [] | sum }} {{ [0.5, 1] | sum }}", null),
        ("{{ 'Hello World Foo' | replace(' ', '_') | lower | truncate(5) if false else 'Hello World Foo' | replace(' ', '_') | lower }} {{ '  x  ' | trim | length }}", null),
        ("{{ d | tojson(indent=2, separators=(',', ': ')) }} {{ l | tojson(separators=(',', ':')) }}", null),
        ("{{ d | tojson(indent=0) }}", null),
        ("{{ {'k': 'v'} | tojson | length }} {{ (users | first) | tojson }} {{ 'é' | tojson | length }}", null),
        ("{{ 1 | string + '1' }} {{ true | string }} {{ 1.0 | string }} {{ [1, 'a'] | string }} {{ nul | string | lower }}", null),
        ("{{ 'ß' | upper }} {{ 'İ' | lower | length }} {{ 'ǆ' | title }}", null),
        ("{{ s | count }} {{ d | count }} {{ 'a-b c' | title }} {{ 'o\\'neil mc-donald' | title }} {{ \"o'neil\".title() }}", null),
        ("{{ l | first }} {{ d | first }} {{ d | last if false else '' }} {{ 'ab' | first }} {{ (1, 2) | last }}", null),
        ("{{ '1.5' | float + 1 }} {{ '1,5' | float }} {{ ' 2 ' | float }} {{ none | int }} {{ true | int }} {{ '-3' | int }} {{ '+4' | int }} {{ '1e2' | int }}", null),
        ("{{ 'abc' | center(2) }}|{{ 'a' | center(4) }}|{{ 'ab' | center(5) }}", null),
        ("a{% break %}b", null),
        ("{% for i in l %}{% macro m() %}{% continue %}{% endmacro %}{{ m() }}{% endfor %}", null),
        ("{% for i in l %}{% else %}{% break %}{% endfor %}", null),
        ("{% with a = 1, b = n %}{{ a + b }}{% set c = 3 %}{% endwith %}[{{ a }}{{ c }}]", null),
        ("{% block body %}in block {{ s }}{% set inner = 1 %}{% endblock %}[{{ inner }}]", null),
        ("{% if true %}a{% elif %}b{% endif %}", null),
        ("{{ 'a' 'b' }}{{ 1 if true }}{{ x | default }}", null),
        ("{%- if true -%} {{- 'x' -}} {%- endif -%}", null),
    ];

    public static IReadOnlyList<TemplateCase> All { get; } =
        Raw.Concat(More).Select((c, i) => new TemplateCase($"snippet {i:000}", c.Template, c.Variables ?? Variables)).ToList();

    public static IEnumerable<object[]> Indices => All.Select((_, i) => new object[] { i });
}
