// The local Slack's page: renders GET /local/api/state, acts as the chosen person through
// /local/api/*, and refetches whenever /local/live says something changed. No build step.
// Loading the page set this start's token as an HttpOnly cookie, which the browser sends with
// these same-origin calls; after George restarts, /local/session hands out the new one.
"use strict";

const EMOJI = {
  white_check_mark: "✅", heavy_check_mark: "✔️", ballot_box_with_check: "☑️", x: "❌",
  heavy_multiplication_x: "✖️", negative_squared_cross_mark: "❎", eyes: "👀", "+1": "👍",
  thumbsup: "👍", "-1": "👎", thumbsdown: "👎", tada: "🎉", warning: "⚠️", hourglass: "⌛",
  hourglass_flowing_sand: "⏳", rocket: "🚀", white_circle: "⚪", black_circle: "⚫",
  large_green_circle: "🟢", large_yellow_circle: "🟡", large_orange_circle: "🟠",
  red_circle: "🔴", large_blue_circle: "🔵", large_purple_circle: "🟣", no_entry: "⛔",
  no_entry_sign: "🚫", stop_sign: "🛑", question: "❓", grey_question: "❔", exclamation: "❗",
  heavy_exclamation_mark: "❗", arrows_counterclockwise: "🔄", repeat: "🔁", fast_forward: "⏩",
  double_vertical_bar: "⏸️", pause_button: "⏸️", stopwatch: "⏱️", alarm_clock: "⏰",
  clock3: "🕒", gear: "⚙️", wrench: "🔧", hammer_and_wrench: "🛠️", lock: "🔒", key: "🔑",
  robot_face: "🤖", bust_in_silhouette: "👤", busts_in_silhouette: "👥", memo: "📝",
  page_facing_up: "📄", package: "📦", computer: "💻", wave: "👋", heart: "❤️", fire: "🔥",
  sparkles: "✨", bulb: "💡", construction: "🚧", zzz: "💤", skull: "💀", heavy_minus_sign: "➖",
  heavy_plus_sign: "➕", arrow_right: "➡️", arrow_forward: "▶️", white_large_square: "⬜",
  black_large_square: "⬛", radio_button: "🔘", raised_hands: "🙌", pray: "🙏", clap: "👏",
  ok_hand: "👌", point_right: "👉", muscle: "💪", thinking_face: "🤔",
  slightly_smiling_face: "🙂", smile: "😄", grinning: "😀", calendar: "📅", date: "📅",
  spiral_calendar_pad: "🗓️", link: "🔗", mag: "🔍", bell: "🔔", rotating_light: "🚨",
  moneybag: "💰", dollar: "💵", chart_with_upwards_trend: "📈", inbox_tray: "📥",
  outbox_tray: "📤", email: "📧", "e-mail": "📧", speech_balloon: "💬", thread: "🧵",
  house: "🏠", information_source: "ℹ️", hourglass_done: "⌛", checkered_flag: "🏁",
  recycle: "♻️", leftwards_arrow_with_hook: "↩️", person_in_steamy_room: "🧖",
};
const TONES = { 2: "🏻", 3: "🏼", 4: "🏽", 5: "🏾", 6: "🏿" };
const TONED = new Set(["+1", "-1", "thumbsup", "thumbsdown", "wave", "raised_hands", "pray",
  "clap", "ok_hand", "point_right", "muscle"]);
const QUICK_REACTIONS = ["white_check_mark", "x"];

const ui = {
  state: null,
  user: null,
  channel: null,
  thread: null,
  view: "channel",
  highlight: null,
};

// -- helpers ---------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

function escapeHtml(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

function emoji(name) {
  const [base, tone] = name.split("::");
  const glyph = EMOJI[base] || emojiTable.glyphs[base];
  if (!glyph) return null;
  const toneMatch = /^skin-tone-([2-6])$/.exec(tone || "");
  if (!toneMatch || !(TONED.has(base) || emojiTable.toned.has(base))) return glyph;
  return withTone(glyph, TONES[toneMatch[1]]);
}

function emojify(html) {
  return html.replace(/:([a-z0-9_+'-]+(?:::skin-tone-[2-6])?):/g,
    (whole, name) => emoji(name) || whole);
}

function userName(id) {
  const user = ui.state.users.find((u) => u.id === id);
  return user ? user.real_name : id;
}

function channelById(id) {
  return ui.state.channels.find((c) => c.id === id);
}

function timeOf(ts) {
  const date = new Date(parseFloat(ts) * 1000);
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function controlSequence(inner) {
  const [target, label] = inner.split("|");
  if (target.startsWith("@")) {
    return `<span class="mention">@${escapeHtml(label || userName(target.slice(1)))}</span>`;
  }
  if (target.startsWith("#")) {
    const channel = channelById(target.slice(1));
    const name = label || (channel ? channel.name : target.slice(1));
    return `<a class="mention" href="#" data-goto-channel="${escapeHtml(target.slice(1))}">#${
      escapeHtml(name)}</a>`;
  }
  if (target.startsWith("!subteam^")) {
    const group = ui.state.usergroups.find((g) => g.id === target.slice(9));
    const name = label || (group ? "@" + group.handle : "@group");
    return `<span class="mention">${escapeHtml(name)}</span>`;
  }
  if (target.startsWith("!date^")) return slackDate(target, label);
  if (target.startsWith("!")) {
    return `<span class="mention">@${escapeHtml(label || target.slice(1))}</span>`;
  }
  const href = /^(https?:|mailto:)/.test(target) ? target : "#";
  return `<a href="${escapeHtml(href)}" target="_blank" rel="noopener">${
    escapeHtml(label || target)}</a>`;
}

// Slack's mrkdwn, simply: *bold*, _italic_, ~strike~, `code`, ```pre```, > quotes,
// <links|labels>, <@U…>, <#C…>, <!subteam^S…> and :emoji:.
function mrkdwn(text) {
  const kept = [];
  const keep = (html) => `\u0000${kept.push(html) - 1}\u0000`;
  let out = String(text || "");
  out = out.replace(/<([^<>]+)>/g, (_, inner) => keep(controlSequence(inner)));
  out = out.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  out = out.replace(/```([\s\S]*?)```/g, (_, code) => keep(`<pre>${escapeHtml(code)}</pre>`));
  out = out.replace(/`([^`\n]+)`/g, (_, code) => keep(`<code>${escapeHtml(code)}</code>`));
  out = escapeHtml(out);
  const edge = "(^|[\\s(\\u0000])";
  const end = "(?=$|[\\s).,!?:;\\u0000])";
  out = out.replace(new RegExp(`${edge}\\*([^*\\n]+)\\*${end}`, "g"), "$1<b>$2</b>");
  out = out.replace(new RegExp(`${edge}_([^_\\n]+)_${end}`, "g"), "$1<i>$2</i>");
  out = out.replace(new RegExp(`${edge}~([^~\\n]+)~${end}`, "g"), "$1<s>$2</s>");
  out = out.replace(/(^|\n)&gt; ?([^\n]*)/g, "$1<blockquote>$2</blockquote>");
  out = emojify(out).replace(/\n/g, "<br>");
  return out.replace(/\u0000(\d+)\u0000/g, (_, i) => kept[Number(i)]);
}

function textObject(obj) {
  if (!obj) return "";
  if (obj.type === "mrkdwn") return mrkdwn(obj.text);
  return emojify(escapeHtml(obj.text || "")).replace(/\n/g, "<br>");
}

// -- emoji and dates -------------------------------------------------------------------

// Every standard shortcode, from /local/emoji.json (the `emoji` package); EMOJI above draws
// the page until it arrives, and the few names only Slack uses.
const emojiTable = { glyphs: {}, toned: new Set() };

async function loadEmoji() {
  try {
    const response = await fetch("/local/emoji.json");
    if (!response.ok) return;
    const table = await response.json();
    emojiTable.glyphs = table.emoji || {};
    emojiTable.toned = new Set(table.toned || []);
    render();
  } catch (error) {
    console.warn("no emoji table:", error);
  }
}

// A skin tone goes after the emoji's first character, in place of a variation selector.
function withTone(glyph, tone) {
  const [first, ...rest] = Array.from(glyph);
  return first + tone + (rest[0] === "\uFE0F" ? rest.slice(1) : rest).join("");
}

const DAY = 86400000;

function ordinal(n) {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? "th" : ({ 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th");
  return `${n}${suffix}`;
}

function dayName(at, pattern, pretty) {
  if (pretty) {
    const today = new Date();
    today.setHours(0, 0, 0, 0);
    const day = new Date(at);
    day.setHours(0, 0, 0, 0);
    const offset = Math.round((day - today) / DAY);
    const word = { 0: "Today", [-1]: "Yesterday", 1: "Tomorrow" }[offset];
    if (word) return word;
  }
  const part = (options) => at.toLocaleDateString("en-US", options);
  const month = part({ month: "long" });
  const year = at.getFullYear();
  if (pattern === "date_short") return part({ month: "short", day: "numeric", year: "numeric" });
  if (pattern === "date_long") return `${part({ weekday: "long" })}, ${month} ${ordinal(at.getDate())}, ${year}`;
  return `${month} ${ordinal(at.getDate())}, ${year}`;
}

function ago(at) {
  const seconds = Math.round((at - Date.now()) / 1000);
  const units = [["year", 31536000], ["month", 2592000], ["day", 86400], ["hour", 3600],
    ["minute", 60], ["second", 1]];
  const [unit, size] = units.find(([, length]) => Math.abs(seconds) >= length) || units[5];
  return new Intl.RelativeTimeFormat("en-US", { numeric: "auto" })
    .format(Math.round(seconds / size), unit);
}

// One {token} of a Slack date: in the reader's time zone, as Slack shows it.
function dateToken(token, at) {
  const time = (options) => at.toLocaleTimeString("en-US", { hour: "numeric", minute: "2-digit", ...options });
  const pad = (n) => String(n).padStart(2, "0");
  switch (token) {
    case "date_num": return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}`;
    case "date": case "date_short": case "date_long": return dayName(at, token, false);
    case "date_pretty": case "date_short_pretty": case "date_long_pretty":
      return dayName(at, token.replace("_pretty", ""), true);
    case "day_divider_pretty": return dayName(at, "date_long", true);
    case "time": return time({});
    case "time_secs": return time({ second: "2-digit" });
    case "ago": return ago(at);
    default: return null;
  }
}

// <!date^1700000000^{date_short} at {time}^optional-link|fallback>
function slackDate(target, fallback) {
  const [, stamp, format = "", link] = target.split("^");
  const seconds = Number(stamp);
  if (!stamp || !Number.isFinite(seconds)) return escapeHtml(fallback || "");
  const at = new Date(seconds * 1000);
  const text = format.replace(/\{(\w+)\}/g, (whole, token) => dateToken(token, at) ?? whole);
  const html = `<time class="slack-date" datetime="${at.toISOString()}" title="${
    escapeHtml(fallback || at.toISOString())}">${escapeHtml(text)}</time>`;
  return link && /^https?:/.test(link)
    ? `<a href="${escapeHtml(link)}" target="_blank" rel="noopener">${html}</a>` : html;
}

// -- Block Kit -------------------------------------------------------------------------

function button(element, where) {
  const style = element.style ? ` ${element.style}` : "";
  const attrs = [
    `class="block-button${style}"`,
    `data-action-id="${escapeHtml(element.action_id || "")}"`,
    `data-block-id="${escapeHtml(where.blockId || "")}"`,
    `data-testid="button-${escapeHtml(element.action_id || "")}"`,
  ];
  if (element.url) attrs.push(`data-url="${escapeHtml(element.url)}"`);
  return `<button type="button" ${attrs.join(" ")}>${textObject(element.text)}</button>`;
}

function element(el, where) {
  if (!el) return "";
  if (el.type === "button") return button(el, where);
  if (el.type === "image") {
    return `<img src="${escapeHtml(el.image_url || "")}" alt="${escapeHtml(el.alt_text || "")}">`;
  }
  const label = el.placeholder ? textObject(el.placeholder) : escapeHtml(el.type);
  return `<span class="unknown-block">[${label}]</span>`;
}

function richText(elements) {
  return (elements || []).map((part) => {
    if (part.type === "text") return escapeHtml(part.text);
    if (part.type === "user") return `<span class="mention">@${escapeHtml(userName(part.user_id))}</span>`;
    if (part.type === "link") return `<a href="${escapeHtml(part.url)}">${escapeHtml(part.text || part.url)}</a>`;
    if (part.type === "emoji") return emoji(part.name) || `:${escapeHtml(part.name)}:`;
    if (part.type === "date") return slackDate(`!date^${part.timestamp}^${part.format}`, part.fallback);
    if (part.elements) return richText(part.elements);
    return "";
  }).join("");
}

function block(b) {
  const where = { blockId: b.block_id };
  switch (b.type) {
    case "header":
      return `<div class="block-header">${textObject(b.text)}</div>`;
    case "section": {
      const fields = b.fields
        ? `<div class="fields">${b.fields.map((f) => `<div>${textObject(f)}</div>`).join("")}</div>`
        : "";
      const accessory = b.accessory ? `<div>${element(b.accessory, where)}</div>` : "";
      return `<div class="block-section"><div class="section-main">${textObject(b.text)}${
        fields}</div>${accessory}</div>`;
    }
    case "context":
      return `<div class="block-context">${(b.elements || []).map((e) => (
        e.type === "image" ? element(e, where) : `<span>${textObject(e)}</span>`)).join("")}</div>`;
    case "divider":
      return '<hr class="block-divider">';
    case "actions":
      return `<div class="block-actions">${(b.elements || []).map((e) => element(e, where))
        .join("")}</div>`;
    case "image":
      return `<div class="block-image">${element({ ...b, type: "image" }, where)}</div>`;
    case "markdown":
      return `<div class="text">${mrkdwn(b.text)}</div>`;
    case "rich_text":
      return `<div class="text">${richText(b.elements)}</div>`;
    default:
      return `<div class="unknown-block">[${escapeHtml(b.type)} block]</div>`;
  }
}

function blocks(list) {
  return `<div class="blocks">${list.map(block).join("")}</div>`;
}

// -- messages --------------------------------------------------------------------------

function reactionsHtml(message) {
  return (message.reactions || []).map((r) => {
    const mine = r.users.includes(ui.user) ? " mine" : "";
    const who = r.users.map(userName).join(", ");
    const glyph = emoji(r.name) || `:${escapeHtml(r.name)}:`;
    return `<button type="button" class="reaction${mine}" data-reaction="${escapeHtml(r.name)}"
      data-testid="reaction-${escapeHtml(r.name)}" title="${escapeHtml(who)} reacted with :${
      escapeHtml(r.name)}:">${glyph} <span class="count">${r.count}</span></button>`;
  }).join("");
}

function messageHtml(message, channelId, { inThread = false } = {}) {
  const isBot = Boolean(message.bot_id);
  const author = isBot ? ui.state.bot.real_name : userName(message.user);
  const initial = escapeHtml(author.slice(0, 1).toUpperCase());
  const highlight = ui.highlight === message.ts ? " highlight" : "";
  const content = message.subtype === "channel_join"
    ? `<div class="text system">${mrkdwn(message.text)}</div>`
    : message.blocks && message.blocks.length
      ? blocks(message.blocks)
      : `<div class="text">${mrkdwn(message.text)}</div>`;
  const replies = !inThread && message.reply_count
    ? `<button type="button" class="reply-link" data-open-thread="${message.ts}"
        data-testid="open-thread">${message.reply_count} ${
        message.reply_count === 1 ? "reply" : "replies"}</button>`
    : "";
  const quick = QUICK_REACTIONS.map((name) => `<button type="button" data-react="${name}"
      data-testid="react-${name}" title="React with :${name}:">${emoji(name)}</button>`).join("");
  const reply = inThread ? "" : `<button type="button" data-open-thread="${message.ts}"
      data-testid="reply" title="Reply in thread">💬</button>`;
  return `<div class="message${highlight}" data-ts="${message.ts}" data-channel="${channelId}"
      data-testid="message">
    <div class="avatar${isBot ? " bot" : ""}">${initial}</div>
    <div class="body">
      <div class="meta"><span class="author">${escapeHtml(author)}</span>${
        isBot ? '<span class="badge">APP</span>' : ""}<time>${timeOf(message.ts)}</time>${
        message.edited ? '<span class="edited">(edited)</span>' : ""}</div>
      ${content}
      <div class="reactions">${reactionsHtml(message)}</div>
      ${replies}
    </div>
    <div class="hover-actions">${quick}${reply}</div>
  </div>`;
}

function ephemeralHtml(e) {
  const fromSlackbot = e.sender === "slackbot";
  const author = fromSlackbot ? "Slackbot" : ui.state.bot.real_name;
  const content = e.blocks && e.blocks.length ? blocks(e.blocks)
    : `<div class="text">${mrkdwn(e.text)}</div>`;
  return `<div class="message ephemeral" data-ephemeral-ts="${e.ts}" data-testid="ephemeral">
    <div class="avatar ${fromSlackbot ? "slackbot" : "bot"}">${author.slice(0, 1)}</div>
    <div class="body">
      <div class="meta"><span class="author">${escapeHtml(author)}</span><time>${
        timeOf(e.ts)}</time><span class="only-you">Only visible to you</span></div>
      ${content}
    </div>
  </div>`;
}

function myEphemerals(channelId, threadTs) {
  return (ui.state.ephemerals[ui.user] || []).filter((e) => e.channel === channelId
    && (e.thread_ts || null) === (threadTs || null));
}

function byTs(a, b) {
  return parseFloat(a.ts) - parseFloat(b.ts);
}

// -- rendering -------------------------------------------------------------------------

function renderUsers() {
  const select = $("user-select");
  const people = ui.state.users.filter((u) => !u.is_bot);
  if (!people.some((u) => u.id === ui.user)) ui.user = people.length ? people[0].id : null;
  select.innerHTML = people.map((u) => {
    const about = [u.title, u.note].filter(Boolean).join(" · ");
    return `<option value="${u.id}"${u.id === ui.user ? " selected" : ""}>${escapeHtml(u.real_name)}${
      about ? " — " + escapeHtml(about) : ""}</option>`;
  }).join("");
}

function visibleChannels() {
  return ui.state.channels.filter((c) => !c.is_im || c.im_user === ui.user);
}

function renderSidebar() {
  $("channel-list").innerHTML = visibleChannels().map((c) => {
    const active = ui.view === "channel" && c.id === ui.channel ? " active" : "";
    const member = c.members.includes(ui.user) ? "" : " not-member";
    const label = c.is_im ? `${escapeHtml(ui.state.bot.real_name)} (messages)` : `# ${escapeHtml(c.name)}`;
    return `<li><a href="#" class="${active}${member}" data-goto-channel="${c.id}"
      data-testid="channel-${escapeHtml(c.name)}">${label}</a></li>`;
  }).join("");
  $("open-home").classList.toggle("active", ui.view === "home");
}

function stickToBottom(container, render) {
  const atBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 40;
  render();
  if (atBottom) container.scrollTop = container.scrollHeight;
}

function renderChannel() {
  const channel = channelById(ui.channel);
  const header = $("channel-header");
  if (!channel) {
    header.textContent = "";
    $("messages").innerHTML = '<div class="empty">No channel.</div>';
    return;
  }
  const botIn = channel.members.includes(ui.state.bot.user_id);
  header.innerHTML = `<span class="name">${channel.is_im ? "" : "# "}${
    escapeHtml(channel.is_im ? ui.state.bot.real_name : channel.name)}</span>
    <span class="purpose">${escapeHtml(channel.purpose || "")}</span>${
    botIn ? "" : '<span class="hint">George is not in this channel yet</span>'}`;
  const items = [
    ...channel.messages.map((m) => ({ ts: m.ts, html: messageHtml(m, channel.id) })),
    ...myEphemerals(channel.id, null).map((e) => ({ ts: e.ts, html: ephemeralHtml(e) })),
  ].sort(byTs);
  stickToBottom($("messages"), () => {
    $("messages").innerHTML = items.length ? items.map((i) => i.html).join("")
      : '<div class="empty">No messages yet.</div>';
  });
  $("composer-text").placeholder = `Message ${channel.is_im ? "George" : "#" + channel.name
  } — try /george status or @george retry JOB`;
}

function renderThread() {
  const pane = $("thread");
  const channel = channelById(ui.channel);
  const parent = channel && ui.thread
    && channel.messages.find((m) => m.ts === ui.thread);
  if (!parent || ui.view !== "channel") {
    pane.hidden = true;
    return;
  }
  pane.hidden = false;
  const replies = (parent.replies || []).map((m) => ({ ts: m.ts, html: messageHtml(m, channel.id,
    { inThread: true }) }));
  const mine = myEphemerals(channel.id, parent.ts).map((e) => ({ ts: e.ts, html: ephemeralHtml(e) }));
  const count = (parent.replies || []).length;
  stickToBottom($("thread-messages"), () => {
    $("thread-messages").innerHTML = messageHtml(parent, channel.id, { inThread: true })
      + `<div class="divider-label">${count} ${count === 1 ? "reply" : "replies"}</div>`
      + [...replies, ...mine].sort(byTs).map((i) => i.html).join("");
  });
}

function renderHome() {
  const home = $("home");
  const showHome = ui.view === "home";
  home.hidden = !showHome;
  $("messages").hidden = showHome;
  $("composer").hidden = showHome;
  if (!showHome) return;
  $("channel-header").innerHTML = `<span class="name">🏠 ${escapeHtml(ui.state.bot.real_name)}</span>
    <span class="purpose">Home</span>`;
  const view = ui.state.home[ui.user];
  home.innerHTML = view && view.blocks.length ? blocks(view.blocks)
    : `<div class="empty">${escapeHtml(ui.state.bot.real_name)} has not published a Home for ${
      escapeHtml(userName(ui.user))} yet.</div>`;
}

function renderStatus() {
  const status = $("app-status");
  const connected = ui.state.app && ui.state.app.connections > 0;
  status.textContent = connected ? "● George connected" : "○ George not connected";
  status.classList.toggle("connected", Boolean(connected));
}

function render() {
  if (!ui.state) return;
  $("workspace-name").textContent = ui.state.team.name;
  renderUsers();
  if (!channelById(ui.channel)) ui.channel = ui.state.channels[0] && ui.state.channels[0].id;
  renderSidebar();
  renderStatus();
  if (ui.view === "channel") renderChannel();
  renderHome();
  renderThread();
  renderModal();
  saveLocation();
}

function saveLocation() {
  const params = new URLSearchParams();
  if (ui.user) params.set("as", ui.user);
  if (ui.view === "home") params.set("view", "home");
  else if (ui.channel) params.set("channel", ui.channel);
  if (ui.thread && ui.view === "channel") params.set("thread_ts", ui.thread);
  history.replaceState(null, "", `/?${params}`);
  if (ui.user) localStorage.setItem("devslack-user", ui.user);
}

// -- talking to the local Slack --------------------------------------------------------

let loading = null;
let again = false;

async function session() {
  await fetch("/local/session", { cache: "no-store" });
}

// A same-origin call; on 401 (George restarted: a new token) it gets the new token once.
async function call(path, options = {}) {
  const response = await fetch(path, options);
  if (response.status !== 401) return response;
  await session();
  return fetch(path, options);
}

// Only the chosen person's ephemeral messages and Home reach the page, as in Slack.
function stateUrl(user) {
  return `/local/api/state?as=${encodeURIComponent(user || "")}`;
}

async function load() {
  if (loading) {
    again = true;
    return loading;
  }
  loading = (async () => {
    do {
      again = false;
      const asked = ui.user;
      const response = await call(stateUrl(asked));
      if (!response.ok) throw new Error(`the local Slack answered ${response.status}`);
      const fresh = await response.json();
      if (asked && ui.user !== asked) {  // fetched for whom the page acted as before: not kept
        again = true;
        continue;
      }
      ui.state = fresh;
      render();
      if (ui.user !== asked) again = true;  // render() chose who we are: fetch what they see
    } while (again);
  })();
  try {
    await loading;
  } finally {
    loading = null;
  }
}

async function act(path, body) {
  const response = await call(`/local/api/${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: ui.user, ...body }),
  });
  const answer = await response.json();
  if (!answer.ok) throw new Error(answer.error);
  await load();
  return answer;
}

function live() {
  const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/local/live`);
  socket.onmessage = () => { load(); };
  socket.onclose = () => { setTimeout(() => session().catch(() => {}).finally(live), 1000); };
}

async function send(textarea, errorBox, threadTs) {
  const text = textarea.value.trim();
  if (!text) return;
  errorBox.textContent = "";
  try {
    await act("messages", { channel: ui.channel, text, thread_ts: threadTs || undefined });
    textarea.value = "";
  } catch (error) {
    errorBox.textContent = `Could not send: ${error.message}`;
  }
}

function openHome() {
  ui.view = "home";
  ui.thread = null;
  render();
  act("app_home_opened", {}).catch(() => {});
}

// -- wiring ----------------------------------------------------------------------------

document.addEventListener("click", (event) => {
  const target = event.target.closest("[data-goto-channel], [data-open-thread], [data-react], [data-reaction], [data-action-id], #open-home, #close-thread");
  if (!target) return;
  event.preventDefault();
  const message = target.closest("[data-ts]");
  if (target.id === "open-home") {
    openHome();
  } else if (target.id === "close-thread") {
    ui.thread = null;
    render();
  } else if (target.dataset.gotoChannel) {
    ui.view = "channel";
    ui.channel = target.dataset.gotoChannel;
    ui.thread = null;
    render();
  } else if (target.dataset.openThread) {
    ui.thread = target.dataset.openThread;
    render();
  } else if (target.dataset.react || target.dataset.reaction) {
    const name = target.dataset.react || target.dataset.reaction;
    const found = findMessage(message.dataset.channel, message.dataset.ts);
    const mine = found && (found.reactions || [])
      .some((r) => r.name === name && r.users.includes(ui.user));
    act("reactions", { channel: message.dataset.channel, ts: message.dataset.ts, name,
      remove: Boolean(mine) }).catch((error) => console.warn(error));
  } else if (target.dataset.actionId !== undefined) {
    if (target.dataset.url) window.open(target.dataset.url, "_blank", "noopener");
    const body = { action_id: target.dataset.actionId, block_id: target.dataset.blockId };
    if (message) Object.assign(body, { channel: message.dataset.channel, ts: message.dataset.ts });
    act("actions", body).catch((error) => console.warn(error));
  }
});

function findMessage(channelId, ts) {
  const channel = channelById(channelId);
  if (!channel) return null;
  for (const m of channel.messages) {
    if (m.ts === ts) return m;
    const reply = (m.replies || []).find((r) => r.ts === ts);
    if (reply) return reply;
  }
  return null;
}

$("user-select").addEventListener("change", (event) => {
  ui.user = event.target.value;
  ui.state.ephemerals = {};  // the previous person's private messages and Home go at once
  ui.state.home = {};
  render();
  load();
  if (ui.view === "home") act("app_home_opened", {}).catch(() => {});
});

for (const [form, textarea, errorBox, threaded] of [
  ["composer", "composer-text", "composer-error", false],
  ["thread-composer", "thread-text", "thread-error", true],
]) {
  $(form).addEventListener("submit", (event) => {
    event.preventDefault();
    send($(textarea), $(errorBox), threaded ? ui.thread : null);
  });
  $(textarea).addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $(form).requestSubmit();
    }
  });
}

// -- modals (views.open): drawn over the page, submitted as view_submission ---------------

let shownModal = "";

function modalInput(b, modal) {
  const el = b.element || {};
  const id = `modal-${b.block_id}-${el.action_id}`;
  const given = (modal.state.values[b.block_id] || {})[el.action_id] || {};
  const typed = modalTyped(el, given);
  const error = (modal.errors || {})[b.block_id];
  const attrs = [`id="${escapeHtml(id)}"`, `data-input-block="${escapeHtml(b.block_id || "")}"`,
    `data-input-action="${escapeHtml(el.action_id || "")}"`, `data-testid="${escapeHtml(id)}"`,
    "data-modal-input"];
  if (el.max_length) attrs.push(`maxlength="${Number(el.max_length)}"`);
  if (el.placeholder) attrs.push(`placeholder="${escapeHtml(el.placeholder.text || "")}"`);
  const field = modalField(el, attrs, typed);
  const optional = b.optional ? ' <span class="modal-optional">(optional)</span>' : "";
  const hint = b.hint ? `<div class="modal-hint">${textObject(b.hint)}</div>` : "";
  return `<div class="block-input${error ? " has-error" : ""}"><label for="${escapeHtml(id)}">${
    textObject(b.label)}${optional}</label>${field}${hint}${
    error ? `<div class="modal-error" data-testid="modal-error">${escapeHtml(error)}</div>` : ""}</div>`;
}

// What an input shows: what the person gave last (kept across a refused submit), else its
// initial value, as Slack's client does.
function modalTyped(el, given) {
  if (given.selected_option) return given.selected_option.value || "";
  if ("selected_date" in given) return given.selected_date || "";
  if ("value" in given) return given.value || "";
  if (el.initial_option) return el.initial_option.value || "";
  return el.initial_date || el.initial_value || "";
}

// A menu for static_select, a date picker, a number input, or text, as the element says.
function modalField(el, attrs, typed) {
  const shown = attrs.join(" ");
  if (el.type === "static_select") {
    const options = (el.options || []).map((o) => `<option value="${escapeHtml(o.value)}"${
      o.value === typed ? " selected" : ""}>${textObject(o.text)}</option>`).join("");
    return `<select ${shown}><option value=""></option>${options}</select>`;
  }
  if (el.type === "datepicker") return `<input type="date" ${shown} value="${escapeHtml(typed)}">`;
  if (el.type === "number_input") {
    const bounds = [el.min_value != null ? `min="${escapeHtml(el.min_value)}"` : "",
      el.max_value != null ? `max="${escapeHtml(el.max_value)}"` : "",
      `step="${el.is_decimal_allowed ? "any" : "1"}"`].join(" ");
    return `<input type="number" ${shown} ${bounds} value="${escapeHtml(typed)}">`;
  }
  return el.multiline
    ? `<textarea rows="4" ${shown}>${escapeHtml(typed)}</textarea>`
    : `<input type="text" ${shown} value="${escapeHtml(typed)}">`;
}

function modalHtml(modal) {
  const body = (modal.blocks || []).map((b) => (b.type === "input" ? modalInput(b, modal) : block(b)))
    .join("");
  const general = (modal.errors || {})[""];
  const submit = modal.submit
    ? `<button type="submit" class="modal-submit" data-testid="modal-submit"${
      modal.submitting ? " disabled" : ""}>${textObject(modal.submit)}</button>` : "";
  return `<form class="modal" id="modal-form" data-view-id="${escapeHtml(modal.id)}" role="dialog"
      aria-modal="true">
    <div class="modal-header"><span class="modal-title">${textObject(modal.title)}</span>
      <button type="button" class="modal-x" data-modal-close data-testid="modal-x" title="Close">✕</button></div>
    <div class="modal-body blocks">${body}</div>
    ${general ? `<div class="modal-error" data-testid="modal-error">${escapeHtml(general)}</div>` : ""}
    <div class="modal-footer"><button type="button" class="modal-cancel" data-modal-close
      data-testid="modal-close">${modal.close ? textObject(modal.close) : "Cancel"}</button>${submit}</div>
  </form>`;
}

function renderModal() {
  const box = $("modal");
  const modal = ((ui.state && ui.state.modals) || {})[ui.user];
  const signature = modal ? JSON.stringify([modal.id, modal.hash, modal.errors, modal.submitting]) : "";
  if (signature === shownModal) return; // what the person is typing stays as it is
  shownModal = signature;
  box.hidden = !modal;
  box.innerHTML = modal ? modalHtml(modal) : "";
  const first = box.querySelector("[data-modal-input]");
  if (first) first.focus();
}

function modalValues(form) {
  const values = {};
  for (const input of form.querySelectorAll("[data-modal-input]")) {
    const blockId = input.dataset.inputBlock;
    values[blockId] = values[blockId] || {};
    values[blockId][input.dataset.inputAction] = input.value;
  }
  return values;
}

document.addEventListener("submit", (event) => {
  if (event.target.id !== "modal-form") return;
  event.preventDefault();
  act("views/submit", { view_id: event.target.dataset.viewId, values: modalValues(event.target) })
    .catch((error) => console.warn(error));
});

document.addEventListener("click", (event) => {
  const target = event.target.closest("[data-modal-close]");
  if (!target) return;
  event.preventDefault();
  const form = target.closest("#modal-form");
  act("views/close", { view_id: form.dataset.viewId }).catch((error) => console.warn(error));
});

(function start() {
  const params = new URLSearchParams(location.search);
  ui.user = params.get("as") || localStorage.getItem("devslack-user");
  ui.channel = params.get("channel");
  ui.thread = params.get("thread_ts");
  ui.highlight = params.get("ts");
  if (params.get("view") === "home") ui.view = "home";
  loadEmoji();
  load().then(() => {
    if (ui.view === "home") act("app_home_opened", {}).catch(() => {});
    const highlighted = ui.highlight && document.querySelector(`[data-ts="${ui.highlight}"]`);
    if (highlighted) highlighted.scrollIntoView({ block: "center" });
  });
  live();
})();
