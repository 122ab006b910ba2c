-- wrk script: POST /api/contacts with a unique sourceId per request.
-- Needs TOKEN in the environment.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  prefix = "bench-" .. os.time() .. "-" .. tid .. "-"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
end

function request()
  counter = counter + 1
  local body = '{"firstName":"Bench","lastName":"User' .. counter ..
    '","email":"bench' .. counter .. '@example.com","company":"Acme Inc","title":"Engineer",' ..
    '"address":{"street":"1 Main St","city":"Springfield","state":"IL","zipCode":"62701","country":"USA"},' ..
    '"tags":["bench"],"customFields":{"n":' .. counter .. '},"source":"bench","sourceId":"' .. prefix .. counter .. '"}'
  return wrk.format(nil, nil, nil, body)
end
