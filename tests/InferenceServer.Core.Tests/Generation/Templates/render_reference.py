"""Reference renderer for the Jinja engine tests: Jinja2 configured exactly as Hugging Face transformers
configures it for chat templates (transformers/utils/chat_template_utils.py, _compile_jinja_template).

Reads one JSON request on stdin: {"now": "2024-07-23T14:05:09", "cases": [{"template": str, "variables": {...}}, ...]}
and writes a JSON list to stdout, one entry per case: {"ok": true, "output": str} or
{"ok": false, "error": exception type name, "message": str}. Run with /usr/bin/python3 (Debian python3-jinja2).
"""
import json
import sys
from datetime import datetime

import jinja2
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment


class AssistantTracker(Extension):
    # What transformers' AssistantTracker does when no generation indices are being collected:
    # {% generation %}...{% endgeneration %} renders its body unchanged.
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render_assistant", []), [], [], body).set_lineno(lineno)

    @jinja2.pass_eval_context
    def _render_assistant(self, context, caller):
        return caller()


def make_environment(now):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return now.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main():
    request = json.load(sys.stdin)
    env = make_environment(datetime.fromisoformat(request.get("now", "2024-07-23T14:05:09")))
    results = []
    for case in request["cases"]:
        try:
            output = env.from_string(case["template"]).render(**case.get("variables", {}))
            results.append({"ok": True, "output": output})
        except Exception as e:  # noqa: BLE001 - the error is the expected output of a case
            results.append({"ok": False, "error": type(e).__name__, "message": str(e)})
    json.dump(results, sys.stdout, ensure_ascii=True)


if __name__ == "__main__":
    main()
