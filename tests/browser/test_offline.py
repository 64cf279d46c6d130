"""Offline: with the network cut the app still opens (the worker's shell and
the last buffer this device saw) and says it is offline; back online it
reconnects and catches up with what changed meanwhile."""
from __future__ import annotations

from playwright.sync_api import expect

from .conftest import api_token, curl, open_app, register, wait_connected, wait_controlled, wait_page_cached


def test_reload_offline_shows_shell_and_last_buffer_then_catches_up(new_context, username, server, problems):
    context = new_context()
    register(context, username)
    token = api_token(context)
    page = open_app(context)
    page.fill("#send-text", "the last thing before the tunnel")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#current-text")).to_have_text("the last thing before the tunnel")
    expect(page.locator("#history .history-item")).to_have_count(1)
    wait_controlled(page)
    wait_page_cached(page)

    # Offline, a reload's network requests fail by design; the worker answers.
    problems.allow(r"net::ERR_INTERNET_DISCONNECTED")
    problems.allow(r"request failed: GET .*/file/buffer/items\S* net::ERR_ABORTED")  # cut mid-flight
    context.set_offline(True)
    expect(page.locator("#status")).to_have_attribute("data-state", "offline")
    response = page.reload()
    assert response.from_service_worker and response.status == 200
    expect(page.locator("#status-text")).to_contain_text("Offline")
    expect(page.locator("#current-text")).to_have_text("the last thing before the tunnel")
    expect(page.locator("#history .history-item")).to_have_count(1)
    expect(page.locator(".site-header")).to_contain_text("CloudBuffer")

    # Meanwhile another device changes the buffer.
    with curl(server, token) as client:
        client.post("/file/buffer", headers={"X-Data-Type": "text"}, content=b"posted while you were away")

    context.set_offline(False)
    wait_connected(page)
    expect(page.locator("#current-text")).to_have_text("posted while you were away")
    expect(page.locator("#history .history-item")).to_have_count(2)


def test_text_sent_offline_is_sent_when_back_online(new_context, username, problems):
    context = new_context()
    register(context, username)
    page = open_app(context)
    # Going offline while the worker is still precaching the shell would
    # abort its fetches: wait until it is installed and controls the page.
    wait_controlled(page)
    problems.allow(r"net::ERR_INTERNET_DISCONNECTED")
    problems.allow(r"request failed: GET .*/file/buffer/items\S* net::ERR_ABORTED")  # cut mid-flight
    context.set_offline(True)
    expect(page.locator("#status")).to_have_attribute("data-state", "offline")
    page.fill("#send-text", "written in the tunnel")
    page.click("#send-button")
    expect(page.locator("#toast")).to_contain_text("when the connection is back")
    context.set_offline(False)
    expect(page.locator("#current-text")).to_have_text("written in the tunnel")
    # Told as what it is: the text written offline, not "1 shared item".
    expect(page.locator("#toast")).to_have_text("Sent the text you wrote offline.")


def test_status_tells_offline_from_reconnecting(new_context, username, problems):
    context = new_context()
    register(context, username)
    # The network is up but the server turns the socket away ("try again later").
    context.route_web_socket("**/ws", lambda socket: socket.close(code=1013, reason="busy"))
    page = context.new_page()
    page.goto("/")
    status = page.locator("#status")
    expect(status).to_have_attribute("data-state", "reconnecting")
    expect(page.locator("#status-text")).to_have_text("Reconnecting… the server does not answer yet")
    problems.allow(r"net::ERR_INTERNET_DISCONNECTED")
    problems.allow(r"request failed: GET .*/file/buffer/items\S* net::ERR_ABORTED")
    # The network is cut on purpose: let the shell finish loading and the
    # service worker its precache first, and do not count a shell file or
    # icon still in flight at that moment as the app's fault (under load
    # in CI, a full run cut upload.js, the icons and the manifest).
    page.wait_for_load_state("networkidle")
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    problems.allow(r"request failed: GET .*/(pwa/\S+|manifest\.webmanifest) net::ERR_ABORTED")
    context.set_offline(True)
    expect(status).to_have_attribute("data-state", "offline")
    expect(page.locator("#status-text")).to_contain_text("Offline — no network")
