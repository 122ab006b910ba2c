-- wrk script: replays the signed webhooks written by
-- `acmecrm simulate --emit FILE --events N`: one request per line, the
-- headers as "Name: value" fields, then the body, separated by tabs.
--   wrk -t2 -c50 -d20s -s bench/webhooks.lua URL -- FILE THREADS
-- Each thread sends its own share of the lines, in order; a thread that
-- runs out starts its share again (the receiver then answers duplicate).
local requests, next_request = {}, 0
local threads_created = 0

function setup(thread)
  thread:set("thread_no", threads_created)
  threads_created = threads_created + 1
end

function init(args)
  local file, threads = args[1], tonumber(args[2] or "1")
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
end

function request()
  next_request = next_request % #requests + 1
  return requests[next_request]
end
