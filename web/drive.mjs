// Opens URL in headless Chromium with WebGPU on SwiftShader (Chromium's CPU Vulkan, so no GPU
// is needed), waits for web/index.html to finish, prints its report; exit 1 on any failure.
import { chromium } from 'playwright-core';

const [url, executablePath = '/usr/bin/chromium'] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader'],
});
const page = await browser.newPage();
page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
page.on('console', (m) => m.type() !== 'log' && console.log(`console ${m.type()}: ${m.text().split('\n')[0]}`));
await page.goto(url);
await page.waitForSelector('[data-done]', { timeout: 300000 });
const report = await page.textContent('#out');
await browser.close();
console.log(report);
process.exit(/\nfailures 0$/.test(report) ? 0 : 1);
