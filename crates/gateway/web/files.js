// Files in the chat client: uploads with a progress bar that can be
// cancelled, image previews in messages (a click opens the full image) and
// download cards for other files. Files are fetched with the chat token in a
// header and shown from blob: URLs, so the token never goes into a URL.
// Names are put into the page with textContent, never as HTML.

/** Object URLs of fetched files, by path (one fetch per file per page). */
const fetched = new Map();

/** The file at `path` as an object URL. */
export function fetchFile(path, token) {
  if (!fetched.has(path)) {
    const url = fetch(path, { headers: { Authorization: `Bearer ${token}` } }).then(async (response) => {
      if (!response.ok) throw new Error(`${response.status}`);
      return URL.createObjectURL(await response.blob());
    });
    url.catch(() => fetched.delete(path));
    fetched.set(path, url);
  }
  return fetched.get(path);
}

/** "1.2 MB", "340 KB", "12 B". */
export function humanSize(bytes) {
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${Math.round(bytes / 1e3)} KB`;
  return `${bytes} B`;
}

/**
 * Uploads `file` to `room`, calling `progress(fraction)` as it goes.
 * Returns `{done, cancel}`: `done` resolves with the stored file's
 * description, or rejects with an Error saying why (`cancelled` if cancelled).
 */
export function upload(room, file, token, progress) {
  const xhr = new XMLHttpRequest();
  const name = encodeURIComponent(file.name || "pasted image");
  const done = new Promise((resolve, reject) => {
    xhr.open("POST", `/api/v1/rooms/${encodeURIComponent(room)}/files?name=${name}`);
    xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.upload.onprogress = (e) => e.lengthComputable && progress(e.loaded / e.total);
    xhr.onload = () => {
      let answer = null;
      try {
        answer = JSON.parse(xhr.responseText);
      } catch {
        // Not JSON: a proxy's page, say; the status tells.
      }
      if (xhr.status === 201 && answer) return resolve(answer);
      reject(new Error(answer?.message || `the upload failed (HTTP ${xhr.status})`));
    };
    xhr.onerror = () => reject(new Error("the upload failed: the network went away"));
    xhr.onabort = () => reject(new Error("cancelled"));
    xhr.send(file);
  });
  return { done, cancel: () => xhr.abort() };
}

/** The attachments of a message: image previews and download cards. */
export function attachmentsView(attachments, token) {
  const list = document.createElement("div");
  list.className = "attachments";
  for (const file of attachments) {
    list.append(file.thumbnail ? preview(file, token) : card(file, token));
  }
  return list;
}

function preview(file, token) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "preview";
  button.title = `${file.name} (${humanSize(file.size)})`;
  const img = document.createElement("img");
  img.alt = file.name;
  if (file.width && file.height) {
    // Space kept before the thumbnail arrives: the log does not jump.
    const scale = Math.min(1, 240 / Math.max(file.width, file.height));
    img.width = Math.round(file.width * scale);
    img.height = Math.round(file.height * scale);
  }
  fetchFile(`/api/v1/files/${file.id}/thumbnail`, token)
    .then((url) => (img.src = url))
    .catch(() => button.classList.add("failed"));
  button.append(img);
  button.addEventListener("click", () => openImage(file, token));
  return button;
}

function card(file, token) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "file-card";
  const name = document.createElement("span");
  name.className = "file-name";
  name.textContent = file.name;
  const size = document.createElement("span");
  size.className = "file-size";
  size.textContent = humanSize(file.size);
  button.append(name, size);
  button.addEventListener("click", async () => {
    try {
      const link = document.createElement("a");
      link.href = await fetchFile(`/api/v1/files/${file.id}`, token);
      link.download = file.name;
      link.click();
    } catch {
      size.textContent = "could not be downloaded";
      button.classList.add("failed");
    }
  });
  return button;
}

/** The full image over the page; a click or Escape closes it. */
function openImage(file, token) {
  const overlay = document.createElement("div");
  overlay.className = "lightbox";
  overlay.setAttribute("role", "dialog");
  overlay.setAttribute("aria-label", file.name);
  const img = document.createElement("img");
  img.alt = file.name;
  const caption = document.createElement("p");
  caption.textContent = `${file.name} · ${humanSize(file.size)}`;
  overlay.append(img, caption);
  const close = () => {
    overlay.remove();
    document.removeEventListener("keydown", onKey);
  };
  const onKey = (e) => e.key === "Escape" && close();
  overlay.addEventListener("click", close);
  document.addEventListener("keydown", onKey);
  document.body.append(overlay);
  fetchFile(`/api/v1/files/${file.id}`, token)
    .then((url) => (img.src = url))
    .catch(() => (caption.textContent = `${file.name} could not be loaded`));
}
