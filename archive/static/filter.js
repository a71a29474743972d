// Filter box of the detection page: hides product rows whose file name does not
// contain the text typed, as the server-side ?q= filter does without JavaScript.
document.querySelectorAll("input[data-filter]").forEach(function (box) {
  var list = document.getElementById(box.dataset.filter);
  if (!list) { return; }
  box.addEventListener("input", function () {
    var wanted = box.value.trim().toLowerCase();
    list.querySelectorAll("tr[data-name]").forEach(function (row) {
      row.hidden = wanted !== "" && row.dataset.name.indexOf(wanted) < 0;
    });
  });
});
