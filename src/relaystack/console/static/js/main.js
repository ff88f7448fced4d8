// The console's entry point: page switching (#/playground, #/status, #/traffic, #/keys), the
// colour theme toggle and, when auth is on, signing in with the admin key.
//
// One HTML document for every page, so the admin key (held in memory by api.js) survives moving
// between them; the URL's hash says which page is shown, so links and the back button work.

import { call, features, onSignInChange, setAdminKey, signedIn } from "./api.js";
import { $, showError } from "./dom.js";
import * as keys from "./keys.js";
import * as playground from "./playground.js";
import * as status from "./status.js";
import * as traffic from "./traffic.js";

const pages = { playground, status, traffic, keys };
const DEFAULT_PAGE = "playground";
let current = null;
const started = new Set();

function pageFromHash() {
  const name = location.hash.startsWith("#/") ? location.hash.slice(2) : "";
  return pages[name] ? name : null;
}

function route() {
  const wanted = pageFromHash();
  if (wanted === null) {
    // an in-page anchor (the skip link's #main) is not a page change
    if (current && location.hash && !location.hash.startsWith("#/")) return;
    history.replaceState(null, "", `#/${current || DEFAULT_PAGE}`);
  }
  const name = wanted || current || DEFAULT_PAGE;
  if (!signedIn()) {
    showOnly("signin");
    markNav(name);
    $("#signin-key").focus();
    return;
  }
  if (current && current !== name && pages[current].hide) pages[current].hide();
  showOnly(name);
  markNav(name);
  if (!started.has(name)) {
    started.add(name);
    pages[name].init();
  }
  if (pages[name].show) pages[name].show();
  current = name;
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · relaystack console`;
}

function showOnly(name) {
  for (const section of document.querySelectorAll("main > section.page")) {
    section.hidden = section.id !== `page-${name}`;
  }
}

function markNav(name) {
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// -- theme: system -> light -> dark -> system ------------------------------------------------

const THEME_KEY = "relaystack-console-theme";
const THEMES = ["system", "light", "dark"];

function currentTheme() {
  return document.documentElement.dataset.theme || "system";
}

function applyTheme(theme) {
  if (theme === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  try {
    if (theme === "system") localStorage.removeItem(THEME_KEY);
    else localStorage.setItem(THEME_KEY, theme);
  } catch {
    // storage disabled: the choice lasts for this page only
  }
  const button = $("#theme-toggle");
  const label = `Colour theme: ${theme} (change)`;
  button.setAttribute("aria-label", label);
  button.title = label;
  document.dispatchEvent(new CustomEvent("themechange"));
}

// -- sign in (auth on) ---------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const input = $("#signin-key");
  const key = input.value.trim();
  const error = $("#signin-error");
  showError(error, null);
  try {
    // only the admin key may list keys: a virtual key gets 403, a wrong one 401
    await call("/v1/admin/keys?status=active", { key });
  } catch (e) {
    showError(error, e.status === 403
      ? new Error("That is a virtual key; the console needs the admin key (RELAYSTACK_ADMIN_KEY).")
      : e);
    return;
  }
  input.value = "";
  setAdminKey(key);
}

function onSession(isSignedIn) {
  $("#session").hidden = !(features.auth && isSignedIn);
  if (!isSignedIn) {
    // forget what was shown with the key: the next sign-in loads it again
    for (const name of started) {
      if (pages[name].hide) pages[name].hide();
      if (pages[name].reset) pages[name].reset();
    }
  }
  route();
}

function init() {
  $("#theme-toggle").addEventListener("click", () => {
    applyTheme(THEMES[(THEMES.indexOf(currentTheme()) + 1) % THEMES.length]);
  });
  applyTheme(currentTheme());
  $("#signin-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", () => setAdminKey(null));
  onSignInChange(onSession);
  window.addEventListener("hashchange", route);
  route();
}

init();
