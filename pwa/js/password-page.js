// A share link's password page. An encrypted file's key is the link's
// #fragment, which the form's POST would leave behind: the fragment goes on
// the form's action, so the navigation keeps it (a wrong password's page
// has it again), and the server's 303 to the unlocked link inherits it
// (a redirect without a fragment keeps the request's).
const form = document.getElementById("link-password-form");
if (form && location.hash) {
  form.addEventListener("submit", () => {
    const action = new URL(form.action, location.href);
    action.hash = location.hash;
    form.action = action.href;
  });
}
