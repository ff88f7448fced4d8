// Runs before the page paints: applies the colour theme chosen with the toggle (light, dark),
// else the system's (prefers-color-scheme). The choice is not a secret: localStorage is fine.
(function () {
  try {
    var theme = window.localStorage.getItem("relaystack-console-theme");
    if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  } catch (e) { /* storage disabled: the system theme it is */ }
})();
