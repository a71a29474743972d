// "Resolve name" on the search form: asks /resolve for the position of the text in the
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
    fetch(button.dataset.url + "?name=" + encodeURIComponent(box.value))
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
