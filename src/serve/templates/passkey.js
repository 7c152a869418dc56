// Passkeys (WebAuthn): the browser side of portico's two ceremonies. Pages work without
// it; with it, "Add a passkey" (home page) and "Sign in with a passkey" (sign-in page)
// appear. The options and the answers travel as WebAuthn's JSON forms.
"use strict";

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
    credentials: "same-origin",
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || "Something went wrong. Try again.");
  return answer;
}

function say(text) {
  const status = document.getElementById("passkey-status");
  if (status) status.textContent = text;
}

async function addPasskey() {
  try {
    const started = await post("/passkeys/register/start");
    const options = PublicKeyCredential.parseCreationOptionsFromJSON(started.options.publicKey);
    const credential = await navigator.credentials.create({ publicKey: options });
    const name = document.getElementById("passkey-name");
    await post("/passkeys/register/finish", {
      ceremony: started.ceremony,
      name: name ? name.value : "",
      credential: credential.toJSON(),
    });
    say("Passkey added. You can now sign in with it.");
    window.location.reload();
  } catch (error) {
    say(error.message);
  }
}

async function signIn() {
  try {
    const started = await post("/passkeys/login/start");
    const options = PublicKeyCredential.parseRequestOptionsFromJSON(started.options.publicKey);
    const credential = await navigator.credentials.get({ publicKey: options });
    const back = document.querySelector("input[name=return_to]");
    const done = await post("/passkeys/login/finish", {
      ceremony: started.ceremony,
      credential: credential.toJSON(),
      return_to: back ? back.value : null,
    });
    window.location.assign(done.to);
  } catch (error) {
    say(error.message);
  }
}

if (window.PublicKeyCredential && PublicKeyCredential.parseCreationOptionsFromJSON) {
  for (const part of document.querySelectorAll("[data-passkey]")) part.hidden = false;
  for (const [id, action] of [["passkey-add", addPasskey], ["passkey-sign-in", signIn]]) {
    const button = document.getElementById(id);
    if (button) button.addEventListener("click", action);
  }
}
