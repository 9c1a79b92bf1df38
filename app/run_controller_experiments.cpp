// The experiments view's requests (experiments/experiment.h) through the session, and its results
// into RunData.
#include <QFileInfo>

#include "infer/calibrate.h"
#include "run_controller.h"
#include "util/atomic_file.h"

void RunController::requestExperiment(rl::ExperimentRequest r) {
    if (!session_.active()) {
        say("experiments need a model: train one to its end, or open a model folder (File > Open model folder)");
        return;
    }
    r.id = ++experimentIds_;
    run_.experimentRunning = r.id;
    session_.requestExperiment(r);
    emit arrived(Arrival::Experiment);
}

void RunController::cancelExperiment() {
    session_.cancelExperiment();
    say("experiment cancelled: its numbers cover the windows done");
}

void RunController::takeExperiment() {
    rl::ExperimentResult r = session_.takeExperiment();
    if (r.id == 0) return;
    if (r.done && r.cancelled && r.id != run_.experimentRunning) return;  // replaced by a newer request: keep what is shown
    if (r.done && r.id == run_.experimentRunning) run_.experimentRunning = 0;
    if (r.done && !r.error.empty()) say(QString::fromStdString(std::string(rl::experiment_kind_name(r.kind)) + ": " + r.error));
    if (r.kind == rl::ExperimentKind::calibrate && r.done) run_.biasesSaved.clear();  // new biases, not saved yet
    run_.experiments[(size_t)r.kind] = std::move(r);
    emit arrived(Arrival::Experiment);
}

void RunController::saveBiases(const QString& path) {
    const rl::ExperimentResult& r = run_.experiments[(size_t)rl::ExperimentKind::calibrate];
    if (!r.done || !r.error.empty() || r.calibration.bias.empty()) return say("calibrate first: there are no biases to save");
    const std::string text = rl::calibration_to_json(r.calibration).dump(1) + "\n";
    if (rl::Status s = rl::atomic_file_write(path.toStdString(), text); !s) return say(QString::fromStdString(s.msg));
    run_.biasesSaved = QFileInfo(path).absoluteFilePath().toStdString();
    say("biases saved to " + path);
    emit arrived(Arrival::Experiment);
}
