"""Run inside an endpoint's network namespace: headless Chromium, driven over WebDriver
(chromedriver), does what a person does on a captive network. It opens a connectivity probe,
lands on the portal's sign-in page, signs in, and saves a screenshot of the status page.
It prints one JSON object: the URLs it passed through and the text of each page.

Usage: browser_portal.py PROBE_URL USER PASSWORD SCREENSHOT SPKI_SHA256_BASE64
"""

from __future__ import annotations

import json
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

TIMEOUT = 20


def main() -> None:
    probe, user, password, screenshot, spki = sys.argv[1:6]
    with tempfile.TemporaryDirectory(prefix="na-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in (
            "--headless=new",
            "--no-sandbox",  # root in a test namespace; the browser is the subject, not a guard
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=412,915",  # a phone-sized window: the pages must read well there
            f"--user-data-dir={profile}",
            # Trust exactly the appliance's self-signed certificate, nothing else.
            f"--ignore-certificate-errors-spki-list={spki}",
            "--no-first-run",
            "--disable-background-networking",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        driver.set_page_load_timeout(TIMEOUT)
        try:
            seen = {}
            driver.get(probe)
            WebDriverWait(driver, TIMEOUT).until(expected_conditions.url_contains("/login"))
            seen["login_url"] = driver.current_url
            seen["login_text"] = driver.find_element(By.TAG_NAME, "body").text
            driver.find_element(By.ID, "username").send_keys(user)
            driver.find_element(By.ID, "password").send_keys(password)
            driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            WebDriverWait(driver, TIMEOUT).until(expected_conditions.url_contains("/status"))
            seen["status_url"] = driver.current_url
            seen["status_text"] = driver.find_element(By.TAG_NAME, "body").text
            seen["screenshot_saved"] = driver.save_screenshot(screenshot)
        finally:
            driver.quit()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
