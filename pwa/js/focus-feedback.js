// A page that answers a form with an error or a confirmation: bring the
// message into view and focus it, so it is seen and read out however far down
// the page its form is (the profile's password error sat 1,100 px down).
export function showFeedback(element) {
  if (!element.hasAttribute("tabindex")) element.tabIndex = -1;
  element.scrollIntoView({block: "center"});
  element.focus({preventScroll: true});
}

const answer = document.querySelector("main .alert[role=alert]:not([hidden]), main [data-focus-on-load]");
if (answer) showFeedback(answer);
