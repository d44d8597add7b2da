"""The agent's local status page: one HTML page, no external assets, works offline.

For the technician at the post, especially when the centre is unreachable: is the agent
measuring, what does it see of each target, how much is waiting to be sent and since when,
did it drop anything, when did an upload last succeed and why the last one failed, and is
its clock right. Rendered by Jinja2 with autoescaping from an :class:`AgentSnapshot`;
refreshes itself every 10 s.
"""

from __future__ import annotations

from jinja2 import DictLoader, Environment, select_autoescape

from monitor.agent.status import AgentSnapshot

REFRESH_S = 10
_NONE = "\N{EN DASH}"  # shown for a value not measured

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{{ refresh_s }}">
<title>Linkwatch agent: {{ s.site_name }}</title>
<style>
body { font-family: system-ui, "Noto Sans Lao", "Phetsarath OT", sans-serif; margin: 1rem;
       color: #1a1a1a; background: #fafafa; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem; }
.sub { color: #555; margin-bottom: 1rem; }
table { border-collapse: collapse; margin: .5rem 0 1.2rem; }
th, td { text-align: left; padding: .3rem .7rem; border-bottom: 1px solid #ddd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.state { font-weight: 600; padding: .1rem .4rem; border-radius: .2rem; }
.up { background: #d6f5d6; } .degraded { background: #fff0c2; }
.down { background: #ffd6d6; } .unknown, .maintenance { background: #e4e4e4; }
.warn { background: #fff0c2; padding: .5rem .7rem; border-left: 4px solid #c90; }
.bad { background: #ffd6d6; padding: .5rem .7rem; border-left: 4px solid #c00; }
.err { color: #900; font-size: .9em; }
</style>
</head>
<body>
<h1>{{ s.site_name }} <small>({{ s.site_id }})</small></h1>
<div class="sub">Linkwatch agent &middot; {{ s.now.strftime("%Y-%m-%d %H:%M:%S") }} UTC
  &middot; server {{ s.server_url }}</div>

{% if s.consecutive_failures %}
<p class="bad">The centre cannot be reached: {{ s.consecutive_failures }} failed upload
attempt(s). Last error: {{ s.last_error }}. Measuring goes on; results wait in the spool.</p>
{% endif %}
{% if s.clock_offset_flagged %}
<p class="warn">This agent's clock is {{ "%.1f"|format(s.clock_offset_s|abs) }} s
{{ "behind" if s.clock_offset_s > 0 else "ahead of" }} the server's (more than
{{ "%g"|format(s.clock_offset_warn_s) }} s): enable NTP on this host.</p>
{% endif %}
{% if s.dropped_total %}
<p class="warn">{{ s.dropped_total }} result(s) were dropped unsent
({{ s.dropped_full_total }} because the spool was full, {{ s.dropped_age_total }} because
they were too old).</p>
{% endif %}

<h2>Upload</h2>
<table>
<tr><th>Waiting to be sent</th><td class="num">{{ s.backlog }} result(s)</td></tr>
<tr><th>Oldest unsent result</th><td>{% if s.oldest_unsent_at %}measured
  {{ s.oldest_unsent_at.strftime("%Y-%m-%d %H:%M:%S") }} UTC ({{ age(s.oldest_unsent_age_s) }}
  ago){% else %}none{% endif %}</td></tr>
<tr><th>Last successful upload</th><td>{% if s.last_upload_at %}
  {{ s.last_upload_at.strftime("%Y-%m-%d %H:%M:%S") }} UTC
  ({{ age((s.now - s.last_upload_at).total_seconds()) }} ago){% else %}none since the agent
  started{% endif %}</td></tr>
<tr><th>Clock offset to the server</th><td>{% if s.clock_offset_s is not none %}
  {{ "%+.3f"|format(s.clock_offset_s) }} s{% else %}not known yet{% endif %}</td></tr>
<tr><th>Dropped unsent (total)</th><td class="num">{{ s.dropped_total }}</td></tr>
<tr><th>Refused by the server</th><td class="num">{{ s.rejected_total }}
  ({{ s.rejected_waiting }} kept aside)</td></tr>
<tr><th>Uploaded since start</th><td class="num">{{ s.results_uploaded_total }} result(s),
  {{ s.bytes_sent_total }} bytes, {{ s.requests_total }} request(s), encoding
  {{ s.encoding }}</td></tr>
{% if s.budget_bytes_per_hour %}
<tr><th>Upload budget</th><td class="num">{{ s.budget_used_bytes }} of
  {{ s.budget_bytes_per_hour }} bytes in the last hour</td></tr>
{% endif %}
</table>

<h2>Targets</h2>
<table>
<tr><th>Target</th><th>Kind</th><th>State</th><th>Measured</th><th>RTT (ms)</th>
  <th>Loss (%)</th><th>Jitter (ms)</th><th>Rounds</th></tr>
{% for t in s.targets %}
<tr>
  <td>{{ t.name }}<br><small>{{ t.target_id }}</small></td>
  <td>{{ t.kind }}</td>
  <td><span class="state {{ t.state.value }}">{{ t.state.value|upper }}</span>
    {% if t.error %}<div class="err">{{ t.error }}</div>{% endif %}</td>
  <td>{% if t.measured_at %}{{ age((s.now - t.measured_at).total_seconds()) }} ago
    {% else %}never{% endif %}</td>
  <td class="num">{{ ms(t.rtt_s) }}</td>
  <td class="num">{{ pct(t.packet_loss) }}</td>
  <td class="num">{{ ms(t.jitter_s) }}</td>
  <td class="num">{{ t.rounds_total }}</td>
</tr>
{% endfor %}
</table>
<p class="sub">Prometheus metrics: <a href="metrics">/metrics</a></p>
</body>
</html>
"""


def _ms(value_s: float | None) -> str:
    return _NONE if value_s is None else f"{value_s * 1000:.1f}"


def _pct(ratio: float | None) -> str:
    return _NONE if ratio is None else f"{ratio * 100:.1f}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return _NONE
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def page_environment() -> Environment:
    """Return the Jinja2 environment of the page (autoescaped HTML)."""
    env = Environment(
        loader=DictLoader({"agent.html": _TEMPLATE}),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.globals.update(ms=_ms, pct=_pct, age=_age)
    return env


def render_page(env: Environment, snapshot: AgentSnapshot, *, refresh_s: int = REFRESH_S) -> str:
    """Return the page's HTML for ``snapshot``."""
    return env.get_template("agent.html").render(s=snapshot, refresh_s=refresh_s)
