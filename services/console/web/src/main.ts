import { createApp } from "vue";
import App from "./App.vue";
import { loadConfig } from "./format";
import { i18n } from "./i18n";
import { router } from "./router";
import "./styles.css";

// The tenant time zones first: every page shows local days and times in them.
void loadConfig().finally(() => createApp(App).use(i18n).use(router).mount("#app"));
