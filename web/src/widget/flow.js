// A Flow sent by an agent, run in the widget: one step at a time (question + buttons or free text);
// each answer goes back as a `flow_answer` message.
import { h, icon, replace } from "../shared/dom.js";

export class FlowCard {
  constructor(widget, message) {
    this.widget = widget;
    this.message = message;
    this.flow = message.flow || { id: "", name: message.body, steps: [] };
    this.stepBox = h("div", { class: "wflow__step" });
    this.el = h("div", { class: "wflow", data: { flow: this.flow.id } },
      h("div", { class: "wflow__head" }, icon("flow", 14), h("span", { text: this.flow.name || "" })),
      this.stepBox);
    this.current = undefined;
    this.update();
  }

  /** Step ids already answered for this run of the flow (stored or being sent). */
  answered() {
    const model = this.widget.model;
    const seq = this.message.seq;
    let nextRun = Infinity;
    for (const m of model.messages.values()) {
      if (m.kind === "flow" && m.seq > seq && m.flow && m.flow.id === this.flow.id && m.seq < nextRun) nextRun = m.seq;
    }
    const ids = new Set();
    for (const m of model.messages.values()) {
      const fa = m.flow_answer;
      if (m.kind === "flow_answer" && fa && fa.flow_id === this.flow.id && m.seq > seq && m.seq < nextRun) ids.add(fa.step_id);
    }
    if (nextRun === Infinity) {
      for (const p of model.pending.values()) if (p.flow_answer && p.flow_answer.flow_id === this.flow.id) ids.add(p.flow_answer.step_id);
    }
    return ids;
  }

  update() {
    const done = this.answered();
    const step = (this.flow.steps || []).find((s) => !done.has(s.id));
    const key = step ? step.id : null;
    if (key === this.current) return;
    this.current = key;
    const t = this.widget.t;
    const root = this.el.getRootNode();
    const hadFocus = !!(root && root.activeElement && this.el.contains(root.activeElement));
    if (!step) {
      replace(this.stepBox, h("div", { class: "wflow__done", role: "status", text: t("flow.done") }));
      if (hadFocus && this.widget.input) this.widget.input.focus();
      return;
    }
    const index = this.flow.steps.indexOf(step);
    const parts = [
      h("div", { class: "wflow__progress", "aria-hidden": "true", text: index + 1 + " / " + this.flow.steps.length }),
      h("div", { class: "wflow__question", id: "wflow-q-" + this.message.seq + "-" + step.id },
        h("span", { class: "sr-only", text: t("flow.step", { n: index + 1, total: this.flow.steps.length }) + ": " }),
        step.question || ""),
    ];
    const buttons = step.buttons || [];
    if (buttons.length) {
      parts.push(h("div", { class: "wflow__buttons", role: "group", "aria-labelledby": "wflow-q-" + this.message.seq + "-" + step.id },
        buttons.map((label) => h("button", {
        class: "wbtn wbtn--choice", type: "button", data: { answer: label },
        on: { click: () => this.answer(step, label) },
      }, label))));
    }
    if (step.free_text || !buttons.length) {
      const input = h("input", { class: "wflow__input", type: "text", maxlength: "2000", placeholder: t("flow.placeholder"),
        "aria-label": (step.question || "") + " " + t("flow.placeholder"),
        on: { keydown: (e) => e.key === "Enter" && (e.preventDefault(), input.value.trim() && this.answer(step, input.value.trim())) } });
      parts.push(h("div", { class: "wflow__free" }, input,
        h("button", { class: "wbtn wbtn--primary", type: "button",
          on: { click: () => input.value.trim() && this.answer(step, input.value.trim()) } }, t("flow.send"))));
    }
    replace(this.stepBox, parts);
    if (hadFocus) {
      const next = this.stepBox.querySelector("button, input");
      if (next) next.focus();
    }
  }

  answer(step, text) {
    for (const b of this.stepBox.querySelectorAll("button, input")) b.disabled = true;
    this.widget.send({ kind: "flow_answer", body: text, flow_answer: { flow_id: this.flow.id, step_id: step.id, answer: text } });
    this.update();
  }
}
