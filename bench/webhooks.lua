-- wrk script: replays the signed webhooks written by
-- `acmecrm simulate --emit FILE --events N`: one request per line, the
-- headers as "Name: value" fields, then the body, separated by tabs.
--   wrk -t2 -c50 -d20s -s bench/webhooks.lua URL -- FILE THREADS
-- Each thread sends its own share of the lines, in order; a thread that
-- runs out starts its share again (the receiver then answers duplicate).
--
-- wrk runs each thread's init (here: reading FILE, seconds for a large
-- one) in turn and starts a thread as soon as its init returns, but
-- starts its clock only after the last one. Left alone, the first thread
-- would send during the others' init: answers wrk counts in a time it
-- does not, a higher rate than the receiver gave. So no thread sends
-- before the last init has ended; that moment is also when FILE.start
-- appears, from which bench/cpu.py --from measures CPU.
local ffi = require("ffi")
ffi.cdef("int usleep(unsigned int usec);")

local requests, next_request = {}, 0
local threads_created = 0
local started = false
local marker -- FILE.start

function setup(thread)
  thread:set("thread_no", threads_created)
  threads_created = threads_created + 1
end

function init(args)
  local file, threads = args[1], tonumber(args[2] or "1")
  marker = file .. ".start"
  if thread_no == 0 then os.remove(marker) end
  local n = 0
  for line in io.lines(file) do
    if n % threads == thread_no then
      local fields, headers = {}, {}
      for field in line:gmatch("[^\t]+") do fields[#fields + 1] = field end
      local body = table.remove(fields)
      for _, field in ipairs(fields) do
        local name, value = field:match("^([^:]+): (.*)$")
        headers[name] = value
      end
      requests[#requests + 1] = wrk.format("POST", nil, headers, body)
    end
    n = n + 1
  end
  assert(#requests > 0, "no webhooks in " .. file)
  if thread_no == threads - 1 then
    assert(io.open(marker, "w")):close()
    started = true
  end
end

-- wait_for_start blocks this thread (all of its connections) until the
-- last thread's init has ended.
local function wait_for_start()
  while true do
    local f = io.open(marker)
    if f then f:close() return end
    ffi.C.usleep(1000)
  end
end

local calls = 0

function request()
  if not started then
    calls = calls + 1
    -- wrk calls the first thread's request() once from its main thread,
    -- before the other inits, to see whether the script pipelines: that
    -- call must not wait, and sends nothing.
    if thread_no == 0 and calls == 1 then return requests[1] end
    wait_for_start()
    started = true
  end
  next_request = next_request % #requests + 1
  return requests[next_request]
end
