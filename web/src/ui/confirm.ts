// Asks before deleting: an in-page modal <dialog>, not window.confirm (which a page cannot style,
// and which automated browsers dismiss without showing it).

let dialog: HTMLDialogElement | null = null;

function build(): HTMLDialogElement {
  const d = document.createElement("dialog");
  d.id = "confirm-dialog";
  d.className = "confirm";
  const form = document.createElement("form");
  form.method = "dialog";
  const message = document.createElement("p");
  message.id = "confirm-message";
  const buttons = document.createElement("div");
  buttons.className = "row";
  const cancel = Object.assign(document.createElement("button"), { value: "cancel", textContent: "Cancel", id: "confirm-cancel" });
  const ok = Object.assign(document.createElement("button"), { value: "confirm", id: "confirm-ok", className: "danger" });
  buttons.append(cancel, ok);
  form.append(message, buttons);
  d.append(form);
  d.setAttribute("aria-labelledby", "confirm-message");
  document.body.append(d);
  return d;
}

/** Shows `message` with Cancel and `action` buttons; resolves true only when `action` was chosen. */
export function confirmAction(message: string, action: string): Promise<boolean> {
  dialog ??= build();
  const d = dialog;
  d.querySelector("#confirm-message")!.textContent = message;
  d.querySelector("#confirm-ok")!.textContent = action;
  d.returnValue = "";
  d.showModal();
  // Cancel first: Enter or a stray click should not delete anything.
  d.querySelector<HTMLButtonElement>("#confirm-cancel")!.focus();
  return new Promise((resolve) => d.addEventListener("close", () => resolve(d.returnValue === "confirm"), { once: true }));
}
