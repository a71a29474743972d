// "Resolve name" on the search forms (one catalogue's and the combined one): asks /resolve for the position of the text in the
// box, writes the coordinates into it and says which resolver answered. Without
// JavaScript the button stays hidden and the server resolves the box itself.
(function () {
  var button = document.getElementById("resolve");
  var box = document.getElementById("f-pos");
  var said = document.getElementById("resolved");
  if (!button || !box) { return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    said.textContent = "resolving...";
    // Accept: JSON, or the site's error handling would answer a browser's request
    // (Accept: */*) for an unknown name with its HTML error page
    fetch(button.dataset.url + "?name=" + encodeURIComponent(box.value),
          {headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (answer) {
        if (answer.error) { said.textContent = answer.error; return; }
        box.value = answer.ra.toFixed(6) + " " + (answer.dec >= 0 ? "+" : "") +
          answer.dec.toFixed(6);
        said.textContent = "resolved by " + answer.resolver +
          (answer.resolved_name ? " (" + answer.resolved_name + ")" : "");
      })
      .catch(function () { said.textContent = "the resolver cannot be reached"; });
  });
})();
