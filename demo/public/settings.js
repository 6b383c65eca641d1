// The widget's settings panel. Validation is the library's: the server runs defineSettings and
// returns SettingsError.issues, each with the path of the field it is about.

const form = document.getElementById('settings')
const TEXT_FIELDS = ['timeLimit', 'portalUrl', 'redirectUrl']
const CHECKBOXES = ['enabled', 'authenticated']

function fill(settings) {
  for (const name of CHECKBOXES) form.elements[name].checked = settings[name] === true
  for (const name of TEXT_FIELDS) {
    const value = settings[name]
    form.elements[name].value =
      value === null || value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value)
  }
}

/** The form as a settings input: a number for plain digits, an object for JSON, else the text as typed. */
function read() {
  const input = {}
  for (const name of CHECKBOXES) input[name] = form.elements[name].checked
  for (const name of TEXT_FIELDS) {
    const text = form.elements[name].value.trim()
    if (text === '') input[name] = null
    else if (/^\d+$/.test(text)) input[name] = Number(text)
    else if (text.startsWith('{')) input[name] = parseOr(text)
    else input[name] = text
  }
  return input
}

function parseOr(text) {
  try {
    return JSON.parse(text)
  } catch {
    return text // the server reports it as an invalid duration
  }
}

function showIssues(issues) {
  for (const element of form.querySelectorAll('.error')) {
    element.hidden = true
    element.textContent = ''
  }
  for (const field of form.querySelectorAll('input')) field.removeAttribute('aria-invalid')
  for (const { path, message } of issues) {
    const field = path.split(/[.[]/)[0]
    const own = field === '' ? null : form.querySelector(`.error[data-for="${CSS.escape(field)}"]`)
    const slot = own ?? form.querySelector('.error[data-for=""]')
    const line = own !== null || path === '' ? message : `${path}: ${message}`
    slot.hidden = false
    slot.textContent = slot.textContent === '' ? line : `${slot.textContent} ${line}`
    if (own !== null) form.elements[field].setAttribute('aria-invalid', 'true')
  }
}

form.addEventListener('submit', async (event) => {
  event.preventDefault()
  document.getElementById('saved').hidden = true
  const response = await fetch('/api/settings', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(read()),
  })
  const data = await response.json()
  if (!response.ok) return showIssues(data.issues ?? [{ path: '', message: data.message }])
  showIssues([])
  fill(data.settings)
  document.getElementById('saved').hidden = false
})

const { settings } = await (await fetch('/api/settings')).json()
fill(settings)
