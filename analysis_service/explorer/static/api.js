// The JSON API as the pages call it: same-origin fetches carrying the session cookie, and the
// CSRF token on anything that changes state. Errors carry the API's own detail.

const csrf = document.body.dataset.csrf || '';

export class ApiError extends Error {
  constructor(status, body) {
    const detail = body && body.detail ? body.detail : `the API answered ${status}`;
    const fields = (body && body.fields) || [];
    super(fields.length ? `${detail}: ${fields.map((f) => `${f.field}: ${f.message}`).join('; ')}` : detail);
    this.status = status;
    this.code = body && body.error;
    this.signedOut = status === 401;
  }
}

export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  const response = await fetch(path, {
    method,
    headers,
    signal,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

export const thumbnail = (imageId, size = 256) => `/v1/images/${imageId}/thumbnail?size=${size}`;

// Whether an error is the end of the sign-in rather than something about the request.
export function describe(error) {
  if (error instanceof ApiError && error.signedOut) return 'Your sign-in has ended: sign in again.';
  if (error instanceof ApiError) return error.message;
  return `The API could not be reached (${error.message}).`;
}
