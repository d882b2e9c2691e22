// The intake form: "Block re-provisioning" only matters for an erasure, so it is shown only
// when the chosen kind includes one; in dev mode, buttons add the simulator's sample IDs.
(function () {
  "use strict";
  var form = document.querySelector("form[enctype='multipart/form-data']");
  var block = document.getElementById("field-block_reprovisioning");
  function showBlock() {
    var chosen = form && form.querySelector("input[name='kind']:checked");
    if (block) block.hidden = !chosen || chosen.value === "export";
  }
  if (form && block) {
    form.addEventListener("change", showBlock);
    showBlock();
  }
  var box = document.getElementById("id_identifiers");
  document.querySelectorAll("button.add-samples").forEach(function (button) {
    button.addEventListener("click", function () {
      var lines = button.getAttribute("data-identifiers").split(" ");
      var text = box.value.replace(/\s+$/, "");
      box.value = (text ? text + "\n" : "") + lines.join("\n") + "\n";
      box.focus();
    });
  });
})();
