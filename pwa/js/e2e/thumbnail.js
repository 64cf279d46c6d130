// The preview of an image made on the device, small enough for the meta
// blob (docs/e2e.md: at most 6 KiB once encrypted and encoded, so the WebP
// itself stays near 3 KiB). The server never sees the image, so it cannot
// make previews any more.

const SIDES = [96, 64, 40];
const MAX_DATA_URL = 3600;
const PREVIEWABLE = /^image\/(png|jpeg|gif|webp|avif|bmp)$/;

export async function thumbnail(file) {
  if (!PREVIEWABLE.test(file.type) || typeof OffscreenCanvas === "undefined") return null;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return null; // not an image after all
  }
  try {
    for (const side of SIDES) {
      const scale = Math.min(1, side / Math.max(bitmap.width, bitmap.height));
      const width = Math.max(1, Math.round(bitmap.width * scale));
      const height = Math.max(1, Math.round(bitmap.height * scale));
      const canvas = new OffscreenCanvas(width, height);
      canvas.getContext("2d").drawImage(bitmap, 0, 0, width, height);
      const blob = await canvas.convertToBlob({type: "image/webp", quality: 0.6});
      const url = await dataURL(blob);
      if (url.length <= MAX_DATA_URL) return url;
    }
    return null;
  } finally {
    bitmap.close();
  }
}

function dataURL(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}
