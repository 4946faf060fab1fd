// /docs: Swagger UI (vendored in swagger-ui/) over Theo's OpenAPI document. "Try it out"
// sends the API key kept by Theo's page (session storage), if there is one.
window.ui = window.SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  // Swagger UI would otherwise send the document to validator.swagger.io.
  validatorUrl: null,
  presets: [window.SwaggerUIBundle.presets.apis],
  requestInterceptor: (request) => {
    let key = "";
    try {
      key = sessionStorage.getItem("theo.apiKey") || "";
    } catch {
      // no storage: no key
    }
    if (key && !request.headers.Authorization) request.headers.Authorization = `Bearer ${key}`;
    return request;
  },
});
